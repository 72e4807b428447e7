import pytest

from kmtl.data import make_synthetic
from kmtl.features.spec import FeatureSpec


@pytest.fixture(scope="session")
def synthetic_small():
    """A small synthetic impression log and its inferred spec."""
    df, truth = make_synthetic(3000, seed=11)
    spec = FeatureSpec.from_dataframe(
        df,
        labels={"ctr": "click", "cvr": "purchase"},
        scenario="scenario",
        sample_spaces={"cvr": "ctr"},
        embedding_dim=4,
    )
    return df, truth, spec

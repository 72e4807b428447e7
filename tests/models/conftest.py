import keras
import pytest

from kmtl.data import make_synthetic
from kmtl.testing import run_model_test
from kmtl.testing import synthetic_spec


@pytest.fixture(scope="session")
def synthetic_small():
    """A small synthetic impression log, its truth and its inferred spec
    (scenario values `s0`..`s3`)."""
    df, truth = make_synthetic(3000, seed=11)
    return df, truth, synthetic_spec(df, embedding_dim=4)


@pytest.fixture
def model_battery(synthetic_small):
    """`kmtl.testing.run_model_test` on `synthetic_small`:
    `model_battery(name, hparams, bad_hparams=..., bad_specs=...)`.

    Clears Keras's global state first, as Keras's own test cases do: the
    graphs of the models built before make tracing slower (about 15 % over
    the 16 models)."""
    df, _, spec = synthetic_small
    keras.backend.clear_session()

    def run(name, hparams=None, **options):
        return run_model_test(name, df, spec, hparams, **options)

    return run

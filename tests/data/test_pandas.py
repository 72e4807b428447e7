import numpy as np
import pandas as pd
import pytest

from kmtl.data import check_features
from kmtl.data import labels_from_dataframe
from kmtl.data import to_dataset
from kmtl.features.spec import CategoricalFeature
from kmtl.features.spec import FeatureSpec
from kmtl.features.spec import NumericalFeature
from kmtl.features.spec import ScenarioSpec
from kmtl.features.spec import SequenceFeature
from kmtl.features.spec import TaskSpec

SPEC = FeatureSpec(
    features=[
        CategoricalFeature("item", vocabulary_size=10),
        CategoricalFeature("city", vocabulary=["a", "b"]),
        NumericalFeature("price"),
        SequenceFeature("hist", max_length=3, shared_with="item"),
    ],
    tasks=[
        TaskSpec("ctr", label="click"),
        TaskSpec("cvr", label="buy", sample_space="ctr"),
    ],
    scenario=ScenarioSpec("domain", values=["x", "y"]),
)


def _df():
    return pd.DataFrame(
        {
            "item": [1, 2, 3, 4],
            "city": ["a", "b", "c", "a"],
            "price": [1.0, 2.0, 3.0, 4.0],
            "hist": [[1, 2, 3, 4], [], [5], [6, 7]],
            "domain": [0, 1, 1, 0],
            "click": [1, 0, 1, 0],
            "buy": [1, 0, 0, 0],
        }
    )


def test_dataset_yields_features_labels_and_sample_spaces():
    ds = to_dataset(_df(), SPEC, batch_size=3)
    features, labels, weights = next(iter(ds))
    assert features["hist"].numpy().tolist() == [
        [1, 2, 3],
        [-1, -1, -1],
        [5, -1, -1],
    ]
    assert features["city"].dtype.name == "string"
    np.testing.assert_array_equal(labels["cvr"], [1, 0, 0])
    np.testing.assert_array_equal(weights["ctr"], [1, 1, 1])
    # CVR counts clicked rows only.
    np.testing.assert_array_equal(weights["cvr"], [1, 0, 1])
    assert sum(1 for _ in ds) == 2


def test_product_labels():
    tasks = [TaskSpec("ctcvr", label=("click", "buy"))]
    labels, _ = labels_from_dataframe(_df(), tasks)
    np.testing.assert_array_equal(labels["ctcvr"], [1, 0, 0, 0])


def test_missing_label_column_names_task_and_column():
    df = _df().drop(columns="buy")
    with pytest.raises(ValueError, match="'buy' of task 'cvr'"):
        to_dataset(df, SPEC)


def test_sample_space_naming_a_missing_task():
    tasks = [TaskSpec("cvr", label="buy", sample_space="ctr")]
    with pytest.raises(ValueError, match="sample_space='ctr'"):
        labels_from_dataframe(_df(), tasks)


def test_non_binary_label_is_rejected():
    df = _df()
    df["click"] = [2, 0, 1, 0]
    with pytest.raises(ValueError, match="'ctr' is binary"):
        labels_from_dataframe(df, SPEC.tasks)


def test_unknown_feature_is_named():
    features = {n: _df()[n].to_numpy() for n in SPEC.input_names}
    features["colour"] = np.zeros(4)
    with pytest.raises(ValueError, match=r"Unknown feature\(s\) \['colour'\]"):
        check_features(features, SPEC)


@pytest.mark.parametrize(
    "column, values, message",
    [
        ("item", [1.5, 2.0, 3.0, 4.0], "'item' expects integer ids"),
        ("price", ["a", "b", "c", "d"], "'price' expects float32"),
        ("city", [1, 2, 3, 4], "'city' expects strings"),
    ],
)
def test_wrong_dtype_names_feature_and_expected_dtype(column, values, message):
    df = _df()
    df[column] = values
    with pytest.raises(ValueError, match=message):
        to_dataset(df, SPEC)


def test_missing_feature_column_is_named():
    with pytest.raises(ValueError, match=r"\['price'\] are not columns"):
        to_dataset(_df().drop(columns="price"), SPEC)


def test_out_of_range_scenario_is_named():
    df = _df()
    df["domain"] = [0, 1, 2, 0]
    with pytest.raises(ValueError, match=r"'domain' must hold ids in \[0, 2\)"):
        to_dataset(df, SPEC)

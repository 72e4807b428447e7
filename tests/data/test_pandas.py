import numpy as np
import pandas as pd
import pytest

from kmtl.data import check_features
from kmtl.data import features_from_dataframe
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


def test_features_are_writable_copies_of_the_columns():
    # pandas 3 gives read-only views of its columns; the arrays are the
    # caller's to edit (e.g. to try an unseen id) and leave the frame alone.
    df = _df()
    features = features_from_dataframe(df, SPEC)
    for name in ("item", "city", "price", "domain"):
        assert features[name].flags.writeable, name
    features["item"][0] = 10**9
    features["city"][0] = "z"
    features["price"][0] = -1.0
    assert df["item"].tolist() == [1, 2, 3, 4]
    assert df["city"].tolist()[0] == "a"
    assert df["price"].tolist()[0] == 1.0


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


# --- issue 16: missing values, bad labels, 64-bit ids, empty frames -------


@pytest.mark.parametrize("dtype", [object, "str"])
def test_missing_strings_become_the_oov_empty_string(dtype):
    df = _df()
    df["city"] = pd.Series(["a", None, np.nan, "b"], dtype=dtype)
    features, _, _ = next(iter(to_dataset(df, SPEC)))
    assert features["city"].numpy().tolist() == [b"a", b"", b"", b"b"]


def test_non_string_values_of_a_string_column_become_their_str():
    features = {n: _df()[n].to_numpy() for n in SPEC.input_names}
    features["city"] = np.array(["a", 7, 1.5, None], object)
    out = check_features(features, SPEC)
    assert out["city"].tolist() == ["a", "7", "1.5", ""]


def test_missing_integer_ids_become_minus_one():
    df = _df()
    df["item"] = [1.0, np.nan, 3.0, 4.0]  # what pandas makes of int + NaN
    features, _, _ = next(iter(to_dataset(df, SPEC)))
    assert features["item"].numpy().tolist() == [1, -1, 3, 4]
    df["item"] = pd.array([1, None, 3, 2**40], dtype="Int64")
    features, _, _ = next(iter(to_dataset(df, SPEC)))
    assert features["item"].numpy().tolist() == [1, -1, 3, 2**40]


def test_integer_ids_beyond_float_precision_are_rejected():
    df = _df()
    df["item"] = [1.0, np.nan, 3.0, 2.0**60]
    with pytest.raises(ValueError, match="'item' holds integer ids as floats"):
        to_dataset(df, SPEC)


def test_64_bit_ids_keep_their_width():
    features = {n: _df()[n].to_numpy() for n in SPEC.input_names}
    features["item"] = np.array([2**32 + 3, 2**40, 3, 0], "uint64")
    assert check_features(features, SPEC)["item"].tolist() == [
        2**32 + 3,
        2**40,
        3,
        0,
    ]
    features["item"] = np.array([2**63, 0, 0, 0], "uint64")
    with pytest.raises(ValueError, match="uint64 ids >= 2"):
        check_features(features, SPEC)


def test_missing_numericals_and_lists():
    df = _df()
    df["price"] = pd.array([1.0, None, 3.0, 4.0], dtype="Float64")
    df["hist"] = [[1], np.nan, None, [2]]
    features, _, _ = next(iter(to_dataset(df, SPEC)))
    assert np.isnan(features["price"].numpy()[1])
    assert features["hist"].numpy().tolist()[1:3] == [[-1] * 3] * 2
    df["price"] = pd.Series([1.0, None, 3, 4.0], dtype=object)
    features, _, _ = next(iter(to_dataset(df, SPEC)))
    assert np.isnan(features["price"].numpy()[1])


def test_missing_scenario_id_is_named_as_missing():
    df = _df()
    df["domain"] = [0, np.nan, 1, 0]
    with pytest.raises(ValueError, match=r"\(-1 is a missing id\)"):
        to_dataset(df, SPEC)


@pytest.mark.parametrize("kind", ["binary", "regression"])
def test_missing_label_is_named_with_its_task_and_row_count(kind):
    df = _df()
    df["click"] = [1.0, np.nan, np.inf, 0.0]
    tasks = [TaskSpec("ctr", label="click", kind=kind)]
    with pytest.raises(
        ValueError,
        match=r"Task 'ctr': label column 'click' holds 2 missing or "
        r"non-finite.*bad_rows=2",
    ):
        labels_from_dataframe(df, tasks)


@pytest.mark.parametrize("value", [1.7, 3, -1])
def test_multiclass_labels_are_integers_in_range(value):
    df = _df()
    df["stars"] = [0, 1, 2, value]
    tasks = [TaskSpec("stars", kind="multiclass", num_classes=3)]
    with pytest.raises(
        ValueError,
        match=r"'stars' is multiclass but its label 'stars' holds 1 "
        r"value\(s\) other than integer classes in \[0, 3\)",
    ):
        labels_from_dataframe(df, tasks)
    df["stars"] = [0, 1, 2, 2]
    labels, _ = labels_from_dataframe(df, tasks)
    assert labels["stars"].dtype == np.int32


def test_non_numeric_label_is_named():
    df = _df()
    df["click"] = ["yes", "no", "yes", "no"]
    with pytest.raises(ValueError, match="'click' must hold numbers"):
        labels_from_dataframe(df, SPEC.tasks)


def test_empty_dataframe_is_named():
    with pytest.raises(ValueError, match="to_dataset: the DataFrame is empty"):
        to_dataset(_df().iloc[:0], SPEC)

"""`kmtl.predict`: the predictions of `model.predict` on the features of
`features_from_dataframe`, as a DataFrame with the input's index."""

import numpy as np
import pandas as pd
import pytest

import kmtl
from kmtl.data import features_from_dataframe
from kmtl.data import make_synthetic
from kmtl.testing import synthetic_spec


@pytest.fixture(scope="module")
def messy():
    """Synthetic rows with missing values (NaN floats, None strings, ids
    as a float column with NaN) and a shuffled string index."""
    df, _ = make_synthetic(500, seed=7)
    spec = synthetic_spec(df, embedding_dim=4)
    rng = np.random.default_rng(0)
    df = df.sample(frac=1.0, random_state=0)
    df.index = [f"row{i}" for i in range(len(df))]
    df.loc[rng.random(len(df)) < 0.1, "price"] = np.nan
    df["device"] = df["device"].astype(object)
    df.loc[rng.random(len(df)) < 0.1, "device"] = None
    df["item_id"] = df["item_id"].astype("float64")
    df.loc[rng.random(len(df)) < 0.05, "item_id"] = np.nan
    return df, spec


def test_predict_equals_model_predict_on_the_features(messy):
    df, spec = messy
    model = kmtl.build("mmoe", spec, num_experts=2, expert_units=(8,))
    got = kmtl.predict(model, df, batch_size=128)
    expected = model.predict(
        features_from_dataframe(df, spec), batch_size=128, verbose=0
    )
    assert list(got.columns) == ["ctr", "cvr"]
    assert got.index.equals(df.index)
    for task in ("ctr", "cvr"):
        np.testing.assert_array_equal(got[task], expected[task][:, 0])
    assert got.notna().all().all()
    assert ((got > 0) & (got < 1)).all().all()
    # Label columns are not needed.
    bare = kmtl.predict(model, df.drop(columns=["click", "purchase"]))
    np.testing.assert_allclose(bare, got, atol=1e-6)


def test_esmm_derived_output_gets_its_column(messy):
    df, spec = messy
    model = kmtl.build("esmm", spec, tower_units=(8,))
    got = kmtl.predict(model, df)
    assert sorted(got.columns) == ["ctcvr", "ctr", "cvr"]
    np.testing.assert_allclose(got["ctcvr"], got["ctr"] * got["cvr"], rtol=1e-5)


def test_multiclass_output_is_one_column_per_class():
    rng = np.random.default_rng(1)
    df = pd.DataFrame(
        {
            "item": rng.integers(0, 10, 64),
            "price": rng.normal(5.0, 2.0, 64),
            "y": rng.integers(0, 3, 64),
        }
    )
    spec = kmtl.FeatureSpec(
        features=[
            kmtl.CategoricalFeature("item", vocabulary_size=10),
            kmtl.NumericalFeature("price", mean=5.0, variance=4.0),
        ],
        tasks=[kmtl.TaskSpec("t", label="y", kind="multiclass", num_classes=3)],
        embedding_dim=4,
    )
    model = kmtl.build("shared_bottom", spec, bottom_units=(8,))
    got = kmtl.predict(model, df)
    assert list(got.columns) == ["t_0", "t_1", "t_2"]
    expected = model.predict(features_from_dataframe(df, spec), verbose=0)
    np.testing.assert_array_equal(got.to_numpy(), expected["t"])
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-5)


def test_bad_inputs_name_what_is_wrong(messy):
    df, spec = messy
    model = kmtl.build("mmoe", spec, num_experts=2, expert_units=(8,))
    with pytest.raises(ValueError, match="must be a pandas.DataFrame"):
        kmtl.predict(model, features_from_dataframe(df, spec))
    with pytest.raises(ValueError, match=r"\['rating'\] are not columns"):
        kmtl.predict(model, df.drop(columns=["rating"]))
    with pytest.raises(ValueError, match="'category' expects strings"):
        kmtl.predict(model, df.assign(category=1.5))
    with pytest.raises(ValueError, match="the DataFrame is empty"):
        kmtl.predict(model, df.iloc[:0])


def test_signature_dtype_errors_point_to_the_dataframe_paths():
    """`check_inputs` (what requests to a SavedModel go through) refuses a
    pandas column that does not convert, and says what does."""
    tf = pytest.importorskip("tensorflow")
    from kmtl.export import check_inputs

    signature = {
        "item_id": tf.TensorSpec([None], tf.int64, name="item_id"),
        "device": tf.TensorSpec([None], tf.string, name="device"),
    }
    df = pd.DataFrame(
        {"item_id": [1.0, np.nan], "device": pd.Series(["ios", None])}
    )
    for column in ("item_id", "device"):
        bad = {"item_id": np.array([1, 2]), "device": np.array(["a", "b"])}
        bad[column] = df[column].to_numpy()
        with pytest.raises(
            ValueError,
            match=rf"features\['{column}'\]`.*features_from_dataframe.*"
            r"kmtl\.serving\.Client.*kmtl\.predict\(model, df\)",
        ):
            check_inputs(bad, signature)

"""The purchase-funnel generator: a consistent truth, real-log messiness
and the selection bias that ESCM2 is about."""

import numpy as np
import pandas as pd
import pytest

import kmtl
from kmtl.data.funnel import FUNNEL_MISSING
from kmtl.data.funnel import make_funnel
from kmtl.data.funnel import true_probabilities
from kmtl.data.funnel import truth_column


@pytest.fixture(scope="module")
def funnel():
    return make_funnel(60_000, seed=3)


def test_columns_and_messiness(funnel):
    df, truth = funnel
    assert list(df.columns) == [
        "user_id", "item_id", "category", "device", "price", "discount",
        "rating", "click", "daction", "purchase",
    ]  # fmt: skip
    assert df["user_id"].str.fullmatch(r"u\d{4}").all()
    assert df["item_id"].str.fullmatch(r"i\d{4}").all()
    for name, share in FUNNEL_MISSING.items():
        assert abs(df[name].isna().mean() - share) < 0.02, name
    shares = df["category"].value_counts(normalize=True)
    assert shares.iloc[0] > 5 * shares.iloc[-1]  # imbalanced
    assert df["device"].value_counts(normalize=True)["web"] < 0.1
    # Rarely shown items miss their rating more often (not at random).
    shown = df["item_id"].map(df["item_id"].value_counts())
    rare = shown < shown.quantile(0.3)
    assert (
        df["rating"][rare].isna().mean() > 2 * df["rating"][~rare].isna().mean()
    )
    assert truth.notna().all().all()


def test_the_funnel_and_its_truth(funnel):
    df, truth = funnel
    click = df["click"] == 1
    assert (df["daction"] <= df["click"]).all()
    assert (df["purchase"] <= df["click"]).all()
    a = truth["p_daction_given_click"]
    mixed = (
        a * truth["p_purchase_given_daction"]
        + (1 - a) * truth["p_purchase_given_oaction"]
    )
    np.testing.assert_allclose(truth["p_purchase_given_click"], mixed, 1e-12)
    np.testing.assert_allclose(
        truth["p_ctcvr"], truth["p_click"] * mixed, 1e-12
    )
    # Empirical rates agree with the truth (3 standard errors).
    for label, column, rows in [
        ("click", "p_click", slice(None)),
        ("daction", "p_daction_given_click", click),
        ("purchase", "p_purchase_given_click", click),
    ]:
        drawn, expected = df[label][rows], truth[column][rows]
        error = 3 * np.sqrt(
            expected.mean() * (1 - expected.mean()) / len(drawn)
        )
        assert abs(drawn.mean() - expected.mean()) < error, label
    # The deterministic action is the way to a purchase.
    bought = df["purchase"] == 1
    after_daction = bought[df["daction"] == 1].mean()
    after_other = bought[click & (df["daction"] == 0)].mean()
    assert after_daction > 5 * after_other
    assert df["daction"].sum() > 3 * df["purchase"].sum()  # denser label


def test_selection_bias():
    """With the bias, clicked rows convert less than the entire space
    would (a CVR model trained on clicks is biased); without it, price and
    rating alone make them convert a little more."""
    gaps = {}
    for bias in (0.0, 1.0, 2.0):
        df, truth = make_funnel(60_000, seed=5, selection_bias=bias)
        cvr = truth["p_purchase_given_click"]
        gaps[bias] = cvr.mean() - cvr[df["click"] == 1].mean()
    assert -0.03 < gaps[0.0] < 0
    assert gaps[1.0] > 0.01
    assert gaps[2.0] > gaps[1.0] + 0.005


def test_seeds():
    first, _ = make_funnel(500, seed=1)
    again, _ = make_funnel(500, seed=1)
    other, _ = make_funnel(500, seed=2)
    world, _ = make_funnel(500, seed=1, world_seed=1)
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(other)
    assert not first.equals(world)
    with pytest.raises(ValueError, match="num_rows"):
        make_funnel(0)


def test_truth_of_each_models_outputs(funnel):
    df, truth = funnel
    spec = kmtl.FeatureSpec.from_dataframe(
        df[:2000],
        labels={"ctr": "click", "avr": "daction", "cvr": "purchase"},
        sample_spaces={"avr": "ctr", "cvr": "ctr"},
    )
    columns = {t.name: truth_column(t) for t in kmtl.model_tasks("esm2", spec)}
    assert columns == {
        "ctr": "p_click",
        "avr": "p_daction_given_click",
        "ctavr": "p_ctavr",
        "cvr": "p_purchase_given_click",
        "ctcvr": "p_ctcvr",
    }
    oracle = true_probabilities(truth, kmtl.model_tasks("esm2", spec))
    np.testing.assert_array_equal(
        oracle["cvr"], truth["p_purchase_given_click"]
    )
    assert truth_column(kmtl.TaskSpec("price", kind="regression")) is None

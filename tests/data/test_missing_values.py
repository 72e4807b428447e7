import numpy as np

from kmtl.data.missing_values import make_missing_not_at_random


def test_income_goes_missing_not_at_random():
    df, truth = make_missing_not_at_random(40_000, seed=2)
    assert 0.2 < df.income.isna().mean() < 0.35
    assert 0.07 < df.tenure.isna().mean() < 0.13
    assert df.price.notna().all()
    # A missing income is a high one: those rows click more.
    missing = df.income.isna()
    assert truth.ctr[missing].mean() > truth.ctr[~missing].mean() + 0.1
    assert (df.conversion <= df.click).all()
    np.testing.assert_allclose(truth.ctcvr, truth.ctr * truth.cvr)

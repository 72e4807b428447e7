import numpy as np
import pytest

from kmtl.data import make_synthetic
from kmtl.testing import synthetic_spec


def test_schema_and_ground_truth():
    df, truth = make_synthetic(5000, seed=3)
    assert len(df) == len(truth) == 5000
    assert set(truth.columns) == {"ctr", "cvr", "ctcvr"}
    np.testing.assert_allclose(truth.ctcvr, truth.ctr * truth.cvr)
    # A purchase needs a click.
    assert (df.purchase <= df.click).all()
    # Labels follow the true probabilities.
    assert abs(df.click.mean() - truth.ctr.mean()) < 0.02
    clicked = df.click == 1
    assert abs(df.purchase[clicked].mean() - truth.cvr[clicked].mean()) < 0.04
    assert df.history.map(len).max() <= 8


def test_same_seeds_same_data_and_shared_world():
    a, _ = make_synthetic(100, seed=1)
    b, _ = make_synthetic(100, seed=1)
    c, _ = make_synthetic(100, seed=2)
    assert a.equals(b)
    assert not a.equals(c)


def test_invalid_size():
    with pytest.raises(ValueError, match="num_rows=0"):
        make_synthetic(0)


def test_true_probabilities_follow_each_models_labels():
    import kmtl
    from kmtl.data.synthetic import true_probabilities

    df, truth = make_synthetic(500, seed=5)
    spec = synthetic_spec(df)
    plain = true_probabilities(truth, kmtl.model_tasks("mmoe", spec))
    np.testing.assert_array_equal(plain["ctr"], truth.ctr)
    np.testing.assert_array_equal(plain["cvr"], truth.cvr)
    # ESMM adds ctcvr; AITM trains cvr end to end (click x purchase).
    esmm = true_probabilities(truth, kmtl.model_tasks("esmm", spec))
    np.testing.assert_array_equal(esmm["ctcvr"], truth.ctcvr)
    aitm = true_probabilities(truth, kmtl.model_tasks("aitm", spec))
    np.testing.assert_array_equal(aitm["cvr"], truth.ctcvr)

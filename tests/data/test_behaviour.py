import numpy as np

from kmtl.data.behaviour import make_behaviour_log


def test_histories_and_their_step_categories_line_up():
    df, truth = make_behaviour_log(5000, seed=1)
    lengths = df.history.map(len)
    assert (lengths == df.history_category.map(len)).all()
    assert lengths.min() == 0 and lengths.max() == 20
    # Rows whose last past item matches the target convert more.
    last = df.history_category.map(lambda h: h[-1] if h else None)
    match = (last == df.category).to_numpy()
    assert truth.cvr[match].mean() > truth.cvr[~match].mean() + 0.1
    assert 0.03 < df.price.isna().mean() < 0.07
    assert (df.purchase <= df.click).all()
    np.testing.assert_allclose(truth.ctcvr, truth.ctr * truth.cvr)

import numpy as np
from sklearn.metrics import roc_auc_score

from kmtl.data.position_bias import POSITION_CLICK
from kmtl.data.position_bias import make_position_biased


def test_clicks_follow_the_position_and_the_policy_promotes():
    df, truth = make_position_biased(60_000, seed=3)
    top, bottom = df.position == 0, df.position == 9
    assert df.click[top].mean() > 2 * df.click[bottom].mean()
    # Promoted items are shown near the top whatever their relevance.
    assert (
        df.position[df.promoted == 1].mean()
        < df.position[df.promoted == 0].mean() - 2
    )
    # The logged probability is the relevance shifted by the position bias.
    logit = np.log(truth.ctr / (1 - truth.ctr))
    relevance = np.log(truth.ctr_relevance / (1 - truth.ctr_relevance))
    np.testing.assert_allclose(
        logit - relevance, POSITION_CLICK[df.position], atol=1e-9
    )
    # Relevance labels are drawn from the position-free probability.
    assert roc_auc_score(df.relevant_click, truth.ctr_relevance) > 0.7
    assert df.price.isna().mean() > 0.03
    assert df.user_id.iloc[0].startswith("u")


def test_same_world_seed_same_effects():
    a, ta = make_position_biased(500, seed=1)
    b, tb = make_position_biased(500, seed=1)
    assert a.equals(b) and ta.equals(tb)
    c, _ = make_position_biased(500, seed=2)
    assert not a.equals(c)

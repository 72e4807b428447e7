"""make_scenario_shifted's options: id effects, missing values, string ids."""

import numpy as np
import pytest

from kmtl.data import make_scenario_shifted
from kmtl.training.metrics import roc_auc

SHARES = (0.6, 0.3, 0.1)


def test_options_at_their_defaults_keep_the_table():
    plain, plain_truth = make_scenario_shifted(2000, seed=3)
    same, same_truth = make_scenario_shifted(
        2000,
        seed=3,
        id_scale=1.0,
        signal_scale=1.0,
        user_scenario_scale=0.0,
        missing_share=0.0,
        string_ids=False,
    )
    assert plain.equals(same)
    np.testing.assert_array_equal(plain_truth.ctr, same_truth.ctr)


def test_id_and_signal_scales():
    # Without signals the click law is the scenario's, the user's and the
    # item's: one value per (scenario, user, item).
    df, truth = make_scenario_shifted(
        20_000, scenario_shares=SHARES, signal_scale=0.0
    )
    spread = truth.ctr.groupby([df.scenario, df.user_id, df.item_id]).agg(
        np.ptp
    )
    assert spread.max() < 1e-12

    # Larger id effects, weaker signals: ids explain more of the truth.
    def id_share(**options):
        df, truth = make_scenario_shifted(
            20_000, scenario_shares=SHARES, **options
        )
        logit = np.log(truth.ctr / (1 - truth.ctr))
        by_ids = logit.groupby([df.scenario, df.user_id]).transform("mean")
        return np.corrcoef(logit, by_ids)[0, 1] ** 2

    assert id_share(id_scale=2.0, signal_scale=0.4) > id_share() + 0.2


def test_user_scenario_effects_change_only_the_click_law():
    base, base_truth = make_scenario_shifted(5000, scenario_shares=SHARES)
    df, truth = make_scenario_shifted(
        5000, scenario_shares=SHARES, user_scenario_scale=0.7
    )
    np.testing.assert_allclose(truth.cvr, base_truth.cvr)
    logit = np.log(truth.ctr / (1 - truth.ctr))
    base_logit = np.log(base_truth.ctr / (1 - base_truth.ctr))
    effect = logit - base_logit
    # One effect per (scenario, user), of standard deviation about 0.7.
    groups = effect.groupby([df.scenario, df.user_id])
    assert (groups.max() - groups.min()).max() < 1e-9
    assert 0.5 < groups.first().std() < 0.9


def test_missing_signals_do_not_act_on_the_labels():
    complete, complete_truth = make_scenario_shifted(20_000, seed=4)
    df, truth = make_scenario_shifted(20_000, seed=4, missing_share=0.2)
    signals = [f"s{i}" for i in range(6)]
    missing = df[signals].isna().to_numpy()
    assert 0.18 < missing.mean() < 0.22
    np.testing.assert_array_equal(
        df[signals].to_numpy()[~missing],
        complete[signals].to_numpy()[~missing],
    )
    # Rows with every signal present keep their truth; the others' truth
    # is the complete law with the missing signals at 0, so the oracle
    # stays above what the complete table's truth scores on this log.
    full_rows = ~missing.any(1)
    np.testing.assert_allclose(
        truth.ctr[full_rows], complete_truth.ctr[full_rows], rtol=1e-6
    )
    y = df.click.to_numpy()
    assert roc_auc(y, truth.ctr.to_numpy()) > roc_auc(
        y, complete_truth.ctr.to_numpy()
    )


def test_string_ids():
    df, _ = make_scenario_shifted(100, string_ids=True)
    ints, _ = make_scenario_shifted(100)
    assert df.user_id.tolist() == [f"u{u}" for u in ints.user_id]
    assert df.item_id.tolist() == [f"i{i}" for i in ints.item_id]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(id_scale=-1.0), "Received: id_scale=-1.0"),
        (dict(signal_scale=np.nan), "signal_scale"),
        (dict(missing_share=1.0), "Received: missing_share=1.0"),
        (dict(string_ids="yes"), "string_ids"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        make_scenario_shifted(10, **options)

"""LHUC: the battery, and `kmtl.evaluate` per task and named scenario."""

import numpy as np
import pytest

import kmtl

TINY = dict(hidden_units=(8,), tower_units=(4,))
NO_SCENARIO = [(dict(scenario=None), "needs a ScenarioSpec")]


def test_model_battery(model_battery):
    bad = [(dict(hidden_units=(0,)), "`hidden_units`")]
    model_battery("lhuc", TINY, bad_hparams=bad, bad_specs=NO_SCENARIO)


def test_evaluate_per_task_and_named_scenario(synthetic_small):
    df, _, spec = synthetic_small
    model = kmtl.build("lhuc", spec, **TINY)
    table = kmtl.evaluate(model, df)
    assert list(table.columns) == [
        "task",
        "scenario",
        "auc",
        "logloss",
        "count",
        "positive_rate",
    ]
    assert sorted(set(table.scenario)) == ["all", "s0", "s1", "s2", "s3"]
    ctr = table[table.task == "ctr"].set_index("scenario")
    assert ctr.loc["all", "count"] == len(df)
    last = df.scenario == 3
    assert ctr.loc["s3", "count"] == last.sum()
    assert ctr.loc["s3", "positive_rate"] == pytest.approx(
        df.click[last].mean()
    )
    cvr = table[table.task == "cvr"].set_index("scenario")
    assert cvr.loc["all", "count"] == df.click.sum()  # its sample space
    assert np.isfinite(table.auc).all()

"""Multi-scenario builders: what they need from the spec, per-scenario
evaluation."""

import numpy as np
import pytest

import kmtl
from kmtl.data import make_scenario_shifted

SCENARIO_MODELS = ("star", "lhuc", "epnet", "ppnet", "pepnet")


@pytest.fixture(scope="module")
def shifted():
    df, truth = make_scenario_shifted(2000, seed=3)
    spec = kmtl.FeatureSpec.from_dataframe(
        df,
        labels={"ctr": "click", "cvr": "purchase"},
        scenario="scenario",
        scenario_values=["home", "search", "cart", "live"],
        sample_spaces={"cvr": "ctr"},
        embedding_dim=4,
    )
    return df, truth, spec


@pytest.mark.parametrize("name", SCENARIO_MODELS)
def test_a_spec_without_scenario_is_refused(name, shifted):
    _, _, spec = shifted
    with pytest.raises(ValueError, match=f"'{name}'.*needs a ScenarioSpec"):
        kmtl.build(name, spec.replace(scenario=None))


@pytest.mark.parametrize("name", ["ppnet", "pepnet"])
def test_unknown_persona_feature_is_named(name, shifted):
    _, _, spec = shifted
    with pytest.raises(ValueError, match="persona_features.*'user'"):
        kmtl.build(name, spec, persona_features=["user"])


def test_star_rank_form_builds_and_rejects_a_bad_rank(shifted):
    _, _, spec = shifted
    model = kmtl.build("star", spec, star_units=(8,), scenario_rank=2)
    assert model.get_layer("star_dense_0").scenario_rank == 2
    with pytest.raises(ValueError, match="scenario_rank"):
        kmtl.build("star", spec, scenario_rank=1.5)


def test_evaluate_per_task_and_named_scenario(shifted):
    df, _, spec = shifted
    model = kmtl.build("lhuc", spec, hidden_units=(8,), tower_units=(4,))
    table = kmtl.evaluate(model, df)
    assert list(table.columns) == [
        "task",
        "scenario",
        "auc",
        "logloss",
        "count",
        "positive_rate",
    ]
    assert sorted(set(table.scenario)) == [
        "all",
        "cart",
        "home",
        "live",
        "search",
    ]
    ctr = table[table.task == "ctr"].set_index("scenario")
    assert ctr.loc["all", "count"] == len(df)
    live = df.scenario == 3
    assert ctr.loc["live", "count"] == live.sum()
    assert ctr.loc["live", "positive_rate"] == pytest.approx(
        df.click[live].mean()
    )
    cvr = table[table.task == "cvr"].set_index("scenario")
    assert cvr.loc["all", "count"] == df.click.sum()  # its sample space
    assert np.isfinite(table.auc).all()


def test_out_of_range_scenario_is_named_at_training_time(shifted):
    df, _, spec = shifted
    bad = df.copy()
    bad.loc[5, "scenario"] = 4
    with pytest.raises(ValueError, match="Scenario column 'scenario'.*\\[4\\]"):
        kmtl.data.to_dataset(bad, spec)


def test_a_missing_hierarchy_level_is_named(shifted):
    df, _, spec = shifted
    scenario = kmtl.ScenarioSpec(
        "scenario", spec.scenario.values, {"country": ["us", "fr"]}
    )
    with pytest.raises(ValueError, match=r"\['country'\] are not columns"):
        kmtl.data.to_dataset(df, spec.replace(scenario=scenario))
    with_level = df.assign(country=np.arange(len(df)) % 3)
    with pytest.raises(
        ValueError, match=r"'country' must hold ids in \[0, 2\)"
    ):
        kmtl.data.to_dataset(with_level, spec.replace(scenario=scenario))

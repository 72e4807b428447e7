"""STAR: the battery, and its low-rank per-scenario form."""

import kmtl

TINY = dict(star_units=(8,), tower_units=(4,), auxiliary_units=(4,))
NO_SCENARIO = [(dict(scenario=None), "needs a ScenarioSpec")]


def test_model_battery(model_battery):
    bad = [(dict(scenario_rank=1.5), "`scenario_rank`")]
    model_battery("star", TINY, bad_hparams=bad, bad_specs=NO_SCENARIO)


def test_rank_form(synthetic_small):
    _, _, spec = synthetic_small
    model = kmtl.build("star", spec, **TINY, scenario_rank=2)
    assert model.get_layer("star_dense_0").scenario_rank == 2

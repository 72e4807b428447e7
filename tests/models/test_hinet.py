"""HiNet: the battery, and its task switcher by name."""

import pytest

import kmtl
from kmtl.features.spec import ScenarioSpec
from kmtl.testing import raw_tensors

TINY = dict(expert_units=(8,), task_expert_units=(8,), tower_units=(4,))
BAD = [
    (dict(task_switcher="ple"), "`task_switcher`.*'ple'"),
    (dict(specific_kind="sparse"), "`specific_kind`.*'sparse'"),
    (dict(num_specific_experts=0), "`num_specific_experts`"),
    (dict(task_expert_units=()), "`task_expert_units`"),
]
NO_SCENARIO = [(dict(scenario=None), "needs a ScenarioSpec")]


def test_model_battery(model_battery):
    model_battery("hinet", TINY, bad_hparams=BAD, bad_specs=NO_SCENARIO)


def test_mmoe_task_switcher(synthetic_small):
    df, _, spec = synthetic_small
    model = kmtl.build("hinet", spec, **{**TINY, "task_switcher": "mmoe"})
    out = model.predict_on_batch(raw_tensors(df[:4], spec))
    assert sorted(out) == ["ctr", "cvr"]
    # CGC's 2 experts per task and 2 shared, mixed by MMoE gates.
    assert model.get_layer("task_extraction").num_experts == 6


@pytest.mark.slow
def test_factored_battery(model_battery):
    # Slow (about 40 s alone, 150 s on a loaded machine): export parity of
    # the factored form's gathers and top-k.
    model_battery("hinet", {**TINY, "specific_kind": "factored"})


@pytest.mark.parametrize(
    ("num_scenarios", "top_k", "expected"),
    [(4, 3, "full"), (5, 3, "factored"), (5, 4, "full"), (50, 3, "factored")],
)
def test_auto_form_follows_the_scenario_count(
    num_scenarios, top_k, expected, synthetic_small
):
    _, _, spec = synthetic_small
    spec = spec.replace(
        scenario=ScenarioSpec(
            "scenario", values=[f"s{i}" for i in range(num_scenarios)]
        )
    )
    model = kmtl.build("hinet", spec, **TINY, attention_top_k=top_k)
    layer = model.get_layer("scenario_extraction")
    assert layer.specific_kind == expected
    # The factored form's weights do not hold a set of experts per scenario.
    assert layer.experts.num_experts == (
        4 + 2 * num_scenarios if expected == "full" else 4
    )

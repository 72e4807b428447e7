"""HiNet: the battery, and its task switcher by name."""

import kmtl
from kmtl.testing import raw_tensors

TINY = dict(expert_units=(8,), task_expert_units=(8,), tower_units=(4,))
BAD = [
    (dict(task_switcher="ple"), "`task_switcher`.*'ple'"),
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

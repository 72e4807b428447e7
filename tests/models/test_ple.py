"""PLE and CGC (one PLE level): the battery, and the levels built."""

import pytest

import kmtl

TINY = dict(
    num_shared_experts=1,
    num_task_experts=1,
    expert_units=(8,),
    tower_units=(4,),
)


@pytest.mark.parametrize("name", ["ple", "cgc"])
def test_model_battery(name, model_battery):
    bad = [(dict(num_shared_experts=-1), "num_shared_experts=-1")]
    if name == "ple":
        bad.append((dict(num_levels=0), "`num_levels`.*num_levels=0"))
    model_battery(name, TINY, bad_hparams=bad)


@pytest.mark.parametrize("name, levels", [("ple", 2), ("cgc", 1)])
def test_levels(name, levels, synthetic_small):
    _, _, spec = synthetic_small
    model = kmtl.build(name, spec, **TINY)
    cgc = [x for x in model.layers if isinstance(x, kmtl.layers.CGCLayer)]
    assert len(cgc) == levels

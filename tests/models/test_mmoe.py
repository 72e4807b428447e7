"""MMoE and OMoE (MMoE with one gate): the battery, and the gate count."""

import pytest

import kmtl

TINY = dict(num_experts=3, expert_units=(8,), tower_units=(4,))
BAD = [
    (dict(num_experts=0), "`num_experts`.*num_experts=0"),
    (dict(expert_units=()), "`expert_units`"),
]


@pytest.mark.parametrize("name", ["mmoe", "omoe"])
def test_model_battery(name, model_battery):
    model_battery(name, TINY, bad_hparams=BAD)


@pytest.mark.parametrize("name, gates", [("mmoe", 2), ("omoe", 1)])
def test_one_gate_per_task_or_one_in_all(name, gates, synthetic_small):
    _, _, spec = synthetic_small
    switcher = kmtl.build(name, spec, **TINY).get_layer(name)
    assert isinstance(switcher, kmtl.layers.MMoELayer)
    assert (switcher.num_gates, switcher.num_experts) == (gates, 3)

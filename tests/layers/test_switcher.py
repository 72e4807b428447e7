import numpy as np
import pytest

from kmtl.layers import SWITCHER_NAMES
from kmtl.layers import CGCLayer
from kmtl.layers import MMoELayer
from kmtl.layers import SharedBottomLayer
from kmtl.layers import Switcher
from kmtl.layers import get_switcher


@pytest.mark.parametrize(
    "name, cls",
    [
        ("shared_bottom", SharedBottomLayer),
        ("omoe", MMoELayer),
        ("mmoe", MMoELayer),
        ("cgc", CGCLayer),
    ],
)
def test_get_switcher_by_name(name, cls):
    layer = get_switcher(name, 3, name=f"{name}_switcher")
    assert type(layer) is cls
    assert isinstance(layer, Switcher)
    assert layer.num_outputs == 3
    assert layer.name == f"{name}_switcher"


def test_every_name_builds_and_returns_one_output_per_branch():
    x = np.random.default_rng(0).normal(size=(4, 5)).astype("float32")
    for name in SWITCHER_NAMES:
        units = {"units": (3,)} if name == "shared_bottom" else {}
        if name != "shared_bottom":
            units = {"expert_units": (3,)}
        outputs = get_switcher(name, 2, **units)(x)
        assert [tuple(o.shape) for o in outputs] == [(4, 3), (4, 3)], name


def test_omoe_has_a_shared_gate_and_mmoe_does_not():
    assert get_switcher("omoe", 2).shared_gate is True
    assert get_switcher("mmoe", 2).shared_gate is False
    assert get_switcher("mmoe", 2, num_experts=5).num_experts == 5


def test_kwargs_reach_the_layer():
    layer = get_switcher("cgc", 2, num_shared_experts=1, return_shared=True)
    assert layer.num_shared_experts == 1
    assert layer.num_outputs == 3


def test_unknown_name_lists_known_names():
    with pytest.raises(
        ValueError,
        match="expected one of \\['shared_bottom', 'omoe', 'mmoe', 'cgc'\\]. "
        "Received: name='moe'",
    ):
        get_switcher("moe", 2)


def test_omoe_rejects_shared_gate():
    with pytest.raises(ValueError, match="Received: shared_gate=False"):
        get_switcher("omoe", 2, shared_gate=False)


def test_invalid_num_outputs_is_reported_by_the_layer():
    with pytest.raises(ValueError, match="Received: num_tasks=0"):
        get_switcher("mmoe", 0)


def test_base_class_needs_num_outputs():
    with pytest.raises(NotImplementedError, match="num_outputs"):
        _ = Switcher().num_outputs


def test_num_outputs_by_keyword():
    assert get_switcher("mmoe", num_outputs=4).num_outputs == 4

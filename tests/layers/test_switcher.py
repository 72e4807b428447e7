import keras
import numpy as np
import pytest

from kmtl.layers import CGCLayer
from kmtl.layers import MMoELayer
from kmtl.layers import SharedBottomLayer
from kmtl.layers import Switcher
from kmtl.layers import get_switcher
from kmtl.layers import register_switcher
from kmtl.layers import switcher
from kmtl.layers import switcher_names


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


def test_every_name_takes_the_same_arguments():
    x = np.random.default_rng(0).normal(size=(4, 5)).astype("float32")
    assert {"shared_bottom", "mmoe", "omoe", "cgc"} <= set(switcher_names())
    for name in switcher_names():
        layer = get_switcher(
            name,
            2,
            expert_units=(3,),
            activation="tanh",
            kernel_initializer="he_normal",
            kernel_regularizer="l2",
        )
        outputs = layer(x)
        assert [tuple(o.shape) for o in outputs] == [(4, 3), (4, 3)], name
        config = layer.get_config()
        assert config["expert_units"] == [3], name
        assert config["activation"] == "tanh", name
        assert type(layer).from_config(config).get_config() == config, name


def test_expert_budget_is_mapped_by_each_switcher():
    budget = dict(num_shared_experts=2, num_task_experts=1)
    assert get_switcher("mmoe", 3, **budget).num_experts == 5
    assert get_switcher("omoe", 3, **budget).num_experts == 5
    cgc = get_switcher("cgc", 3, **budget)
    assert (cgc.num_shared_experts, cgc.num_task_experts) == (2, 1)
    assert cgc.num_experts == 5
    assert isinstance(get_switcher("shared_bottom", 3, **budget), Switcher)


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
        ValueError, match="expected one of .*Received: name='moe'"
    ):
        get_switcher("moe", 2)


def test_omoe_rejects_shared_gate():
    with pytest.raises(ValueError, match="Received: shared_gate=False"):
        get_switcher("omoe", 2, shared_gate=False)


def test_invalid_num_tasks_is_reported_by_the_layer():
    with pytest.raises(ValueError, match="Received: num_tasks=0"):
        get_switcher("mmoe", 0)


def test_numpy_integers_are_accepted_and_stored_as_ints():
    layer = get_switcher("mmoe", np.int64(2), num_experts=np.int32(3))
    assert layer.num_experts == 3 and type(layer.num_experts) is int
    assert type(layer.num_tasks) is int


def test_a_new_switcher_registers_by_decorator(monkeypatch):
    monkeypatch.setattr(switcher, "_SWITCHERS", dict(switcher._SWITCHERS))

    @register_switcher("test_identity")
    class IdentitySwitcher(Switcher):
        def call(self, inputs):
            return [inputs] * self.num_tasks

    layer = get_switcher("test_identity", 2, expert_units=(4,))
    assert isinstance(layer, IdentitySwitcher)
    assert "test_identity" in switcher_names()
    with pytest.raises(ValueError, match="already registered"):
        register_switcher("test_identity")(IdentitySwitcher)
    with pytest.raises(ValueError, match="Switcher subclasses"):
        register_switcher("not_a_switcher")(keras.layers.Dense)

import numpy as np
import pytest

from kmtl.layers import SharedBottomLayer
from kmtl.layers import Switcher
from kmtl.testing import LayerBattery
from kmtl.testing import LayerTestCase
from kmtl.testing import to_numpy

X3 = np.array([[1.0, 2.0, 3.0]], dtype="float32")


class TestSharedBottomLayer(LayerTestCase):
    layer_cls = SharedBottomLayer
    batteries = {
        "default": LayerBattery(
            {"num_tasks": 2, "expert_units": (4, 3)},
            np.random.default_rng(0).normal(size=(4, 5)),
            [(4, 3), (4, 3)],
            expected_num_weights=(4, 0),
        )
    }
    invalid_args = [
        ({"num_tasks": 0}, "Received: num_tasks=0"),
        ({"num_tasks": 2, "expert_units": ()}, "Received: expert_units=\\(\\)"),
        ({"num_tasks": 2, "dropout": 2}, "Received: dropout=2"),
        (
            {"num_tasks": 2, "use_batch_norm": None},
            "Received: use_batch_norm=None",
        ),
    ]

    def test_is_a_switcher(self):
        layer = SharedBottomLayer(num_tasks=3)
        assert isinstance(layer, Switcher)
        assert layer.num_outputs == 3

    def test_ones_every_task_gets_the_bottom(self):
        layer = SharedBottomLayer(
            num_tasks=3, expert_units=(2, 1), kernel_initializer="ones"
        )
        outputs = layer(X3)
        assert len(outputs) == 3
        for output in outputs:
            np.testing.assert_allclose(to_numpy(output), [[12.0]])

    def test_list_input_is_rejected(self):
        layer = SharedBottomLayer(num_tasks=2, expert_units=(2,))
        with pytest.raises(ValueError, match="one tensor of shape"):
            layer([X3, X3])

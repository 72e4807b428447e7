import keras
import numpy as np
import pytest

from kmtl.layers import SharedBottomLayer
from kmtl.layers import Switcher
from kmtl.testing import run_layer_test

X3 = np.array([[1.0, 2.0, 3.0]], dtype="float32")


class TestSharedBottomLayer:
    def setup_method(self):
        self.init_kwargs = {"num_tasks": 2, "units": (4, 3)}
        self.input_data = np.random.default_rng(0).normal(size=(4, 5))

    def test_layer_battery(self):
        run_layer_test(
            SharedBottomLayer,
            init_kwargs=self.init_kwargs,
            input_data=self.input_data,
            expected_output_shape=[(4, 3), (4, 3)],
            expected_num_trainable_weights=4,
            expected_num_non_trainable_weights=0,
        )

    def test_is_a_switcher(self):
        layer = SharedBottomLayer(num_tasks=3)
        assert isinstance(layer, Switcher)
        assert layer.num_outputs == 3

    def test_ones_every_task_gets_the_bottom(self):
        layer = SharedBottomLayer(
            num_tasks=3, units=(2, 1), kernel_initializer="ones"
        )
        outputs = layer(X3)
        assert len(outputs) == 3
        for output in outputs:
            np.testing.assert_allclose(
                keras.ops.convert_to_numpy(output), [[12.0]]
            )

    def test_list_input_is_rejected(self):
        layer = SharedBottomLayer(num_tasks=2, units=(2,))
        with pytest.raises(ValueError, match="one tensor of shape"):
            layer([X3, X3])

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            ({"num_tasks": 0}, "Received: num_tasks=0"),
            ({"num_tasks": 2, "units": ()}, "Received: units=\\(\\)"),
            ({"num_tasks": 2, "dropout": 2}, "Received: dropout=2"),
            (
                {"num_tasks": 2, "use_batch_norm": None},
                "Received: use_batch_norm=None",
            ),
        ],
    )
    def test_invalid_args(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            SharedBottomLayer(**kwargs)

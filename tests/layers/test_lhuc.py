import keras
import numpy as np
import pytest

from kmtl.layers import LHUC
from kmtl.testing import run_layer_test


def _np(x):
    return keras.ops.convert_to_numpy(x)


class TestLHUC:
    def setup_method(self):
        # Seed 1: run_layer_test's random targets are seed 0's draws.
        self.x = np.random.default_rng(1).normal(size=(6, 4)).astype("float32")
        self.ids = np.array([0, 1, 2, 0, 2, 2], dtype="int32")

    def test_layer_battery(self):
        run_layer_test(
            LHUC,
            init_kwargs={"num_scenarios": 3},
            input_data=[self.x, self.ids],
            expected_output_shape=(6, 4),
            expected_num_trainable_weights=1,
            expected_num_non_trainable_weights=0,
        )

    def test_scale_is_one_at_init(self):
        out = _np(LHUC(num_scenarios=3)([self.x, self.ids]))
        np.testing.assert_array_equal(out, self.x)

    def test_per_scenario_rows(self):
        layer = LHUC(num_scenarios=3)
        layer.build([(None, 4), (None,)])
        amplitudes = np.array(
            [[0.0, 0.0, 0.0, 0.0], [np.log(3.0)] * 4, [-100.0, 0.0, 2.0, 1.0]],
            dtype="float32",
        )
        layer.scale.assign(amplitudes)
        out = _np(layer([self.x, self.ids[:, None]]))  # [B, 1] ids
        # 2 sigmoid(log 3) = 1.5; 2 sigmoid(-100) ~ 0.
        np.testing.assert_allclose(out[1], 1.5 * self.x[1], rtol=1e-6)
        np.testing.assert_allclose(out[0], self.x[0], rtol=1e-6)
        expected = self.x * 2.0 / (1.0 + np.exp(-amplitudes[self.ids]))
        np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)

    @pytest.mark.skipif(
        keras.backend.backend() != "tensorflow",
        reason="ids are checked in the graph on TensorFlow only",
    )
    def test_out_of_range_scenario_is_an_error(self):
        with pytest.raises(Exception, match=r"must hold ids in \[0, 2\)"):
            LHUC(num_scenarios=2)([self.x, self.ids])

    def test_scenario_shape_is_checked(self):
        with pytest.raises(ValueError, match="\\[B\\] or \\[B, 1\\]"):
            LHUC(num_scenarios=3)([self.x, np.zeros((6, 2), "int32")])

    def test_invalid_args(self):
        with pytest.raises(
            ValueError,
            match="`num_scenarios` must be a positive integer. "
            "Received: num_scenarios=-2",
        ):
            LHUC(num_scenarios=-2)

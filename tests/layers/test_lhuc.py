import keras
import numpy as np
import pytest

from kmtl.layers import LHUC
from kmtl.testing import LayerBattery
from kmtl.testing import LayerTestCase
from kmtl.testing import to_numpy

# Seed 1: run_layer_test's random targets are seed 0's draws.
X = np.random.default_rng(1).normal(size=(6, 4)).astype("float32")
IDS = np.array([0, 1, 2, 0, 2, 2], dtype="int32")


class TestLHUC(LayerTestCase):
    layer_cls = LHUC
    batteries = {
        "default": LayerBattery(
            {"num_scenarios": 3}, [X, IDS], (6, 4), expected_num_weights=(1, 0)
        )
    }
    invalid_args = [
        (
            {"num_scenarios": -2},
            "`num_scenarios` must be a positive integer. "
            "Received: num_scenarios=-2",
        )
    ]

    def test_scale_is_one_at_init(self):
        out = to_numpy(LHUC(num_scenarios=3)([X, IDS]))
        np.testing.assert_array_equal(out, X)

    def test_per_scenario_rows(self):
        layer = LHUC(num_scenarios=3)
        layer.build([(None, 4), (None,)])
        amplitudes = np.array(
            [[0.0, 0.0, 0.0, 0.0], [np.log(3.0)] * 4, [-100.0, 0.0, 2.0, 1.0]],
            dtype="float32",
        )
        layer.scale.assign(amplitudes)
        out = to_numpy(layer([X, IDS[:, None]]))  # [B, 1] ids
        # 2 sigmoid(log 3) = 1.5; 2 sigmoid(-100) ~ 0.
        np.testing.assert_allclose(out[1], 1.5 * X[1], rtol=1e-6)
        np.testing.assert_allclose(out[0], X[0], rtol=1e-6)
        expected = X * 2.0 / (1.0 + np.exp(-amplitudes[IDS]))
        np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)

    @pytest.mark.skipif(
        keras.backend.backend() != "tensorflow",
        reason="ids are checked in the graph on TensorFlow only",
    )
    def test_out_of_range_scenario_is_an_error(self):
        with pytest.raises(Exception, match=r"must hold ids in \[0, 2\)"):
            LHUC(num_scenarios=2)([X, IDS])

    def test_scenario_shape_is_checked(self):
        with pytest.raises(ValueError, match="\\[B\\] or \\[B, 1\\]"):
            LHUC(num_scenarios=3)([X, np.zeros((6, 2), "int32")])

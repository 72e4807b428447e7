import keras
import numpy as np
import pytest

from kmtl.layers import CrossNet
from kmtl.testing import run_layer_test

X3 = np.array([[1.0, 2.0, 3.0]], dtype="float32")


def _np(x):
    return keras.ops.convert_to_numpy(x)


class TestCrossNet:
    def setup_method(self):
        self.input_data = np.random.default_rng(0).normal(size=(4, 5))

    @pytest.mark.parametrize(
        "init_kwargs, num_weights",
        [
            ({"num_layers": 2, "kind": "vector"}, 4),
            ({"num_layers": 2, "kind": "matrix", "diag_scale": 0.5}, 4),
            ({"num_layers": 2, "kind": "low_rank", "projection_dim": 2}, 6),
        ],
        ids=["vector", "matrix", "low_rank"],
    )
    def test_layer_battery(self, init_kwargs, num_weights):
        run_layer_test(
            CrossNet,
            init_kwargs=init_kwargs,
            input_data=self.input_data,
            expected_output_shape=(4, 5),
            expected_num_trainable_weights=num_weights,
            expected_num_non_trainable_weights=0,
        )

    def test_vector_ones_one_layer(self):
        layer = CrossNet(num_layers=1, kind="vector", kernel_initializer="ones")
        # x0 * (x . w) + b + x = [1, 2, 3] * 6 + 0 + [1, 2, 3].
        np.testing.assert_allclose(_np(layer(X3)), [[7.0, 14.0, 21.0]])

    def test_vector_ones_two_layers_with_bias(self):
        layer = CrossNet(
            num_layers=2,
            kind="vector",
            kernel_initializer="ones",
            bias_initializer="ones",
        )
        # x1 = [6, 12, 18] + 1 + [1, 2, 3] = [8, 15, 22]; x1 . w = 45;
        # x2 = [45, 90, 135] + 1 + [8, 15, 22].
        np.testing.assert_allclose(_np(layer(X3)), [[54.0, 106.0, 158.0]])

    def test_vector_without_bias_has_no_bias_weights(self):
        layer = CrossNet(num_layers=3, kind="vector", use_bias=False)
        layer.build((None, 3))
        assert len(layer.weights) == 3

    def test_matrix_ones(self):
        layer = CrossNet(num_layers=1, kind="matrix", kernel_initializer="ones")
        # W x = [6, 6, 6] -> x0 * 6 + x.
        np.testing.assert_allclose(_np(layer(X3)), [[7.0, 14.0, 21.0]])

    def test_matrix_diag_scale(self):
        layer = CrossNet(
            num_layers=1,
            kind="matrix",
            diag_scale=1.0,
            kernel_initializer="ones",
        )
        # x0 * (W x + x) + x = [1, 2, 3] * [7, 8, 9] + [1, 2, 3].
        np.testing.assert_allclose(_np(layer(X3)), [[8.0, 18.0, 30.0]])

    def test_low_rank_ones(self):
        layer = CrossNet(
            num_layers=1,
            kind="low_rank",
            projection_dim=2,
            kernel_initializer="ones",
        )
        # U x = [6, 6]; V U x = [12, 12, 12] -> x0 * 12 + x.
        np.testing.assert_allclose(_np(layer(X3)), [[13.0, 26.0, 39.0]])

    def test_layers_start_different(self):
        layer = CrossNet(num_layers=2, kind="vector")
        layer.build((None, 16))
        assert not np.allclose(_np(layer.weights[0]), _np(layer.weights[2]))

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            ({"num_layers": 0}, "Received: num_layers=0"),
            (
                {"kind": "full"},
                "`kind` must be one of \\['vector', 'matrix', 'low_rank'\\]. "
                "Received: kind='full'",
            ),
            (
                {"kind": "low_rank"},
                "`projection_dim` must be a positive integer. "
                "Received: projection_dim=None",
            ),
            (
                {"kind": "low_rank", "projection_dim": 0},
                "Received: projection_dim=0",
            ),
            (
                {"kind": "matrix", "projection_dim": 4},
                "only used with kind='low_rank'.*Received: projection_dim=4",
            ),
            ({"diag_scale": -1.0}, "Received: diag_scale=-1.0"),
            (
                {"kind": "vector", "diag_scale": 0.5},
                "must be 0.0 for kind='vector'. Received: diag_scale=0.5",
            ),
            ({"use_bias": "no"}, "Received: use_bias='no'"),
        ],
    )
    def test_invalid_args(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            CrossNet(**kwargs)

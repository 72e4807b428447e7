import numpy as np
import pytest

from kmtl.layers import CrossNet
from kmtl.testing import LayerBattery
from kmtl.testing import LayerTestCase
from kmtl.testing import to_numpy

X3 = np.array([[1.0, 2.0, 3.0]], dtype="float32")
INPUT = np.random.default_rng(0).normal(size=(4, 5))


def _cross_battery(init_kwargs, num_weights):
    return LayerBattery(
        init_kwargs, INPUT, (4, 5), expected_num_weights=(num_weights, 0)
    )


class TestCrossNet(LayerTestCase):
    layer_cls = CrossNet
    batteries = {
        "vector": _cross_battery({"num_layers": 2, "kind": "vector"}, 4),
        "matrix": _cross_battery(
            {"num_layers": 2, "kind": "matrix", "diag_scale": 0.5}, 4
        ),
        "low_rank": _cross_battery(
            {"num_layers": 2, "kind": "low_rank", "projection_dim": 2}, 6
        ),
    }
    invalid_args = [
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
    ]

    # One layer unless said; kernels (and biases where said) all ones.
    @pytest.mark.parametrize(
        "kwargs, expected",
        [
            # x0 * (x . w) + b + x = [1, 2, 3] * 6 + 0 + [1, 2, 3].
            ({"kind": "vector"}, [[7.0, 14.0, 21.0]]),
            # x1 = [6, 12, 18] + 1 + [1, 2, 3] = [8, 15, 22]; x1 . w = 45;
            # x2 = [45, 90, 135] + 1 + [8, 15, 22].
            (
                {"num_layers": 2, "kind": "vector", "bias_initializer": "ones"},
                [[54.0, 106.0, 158.0]],
            ),
            # W x = [6, 6, 6] -> x0 * 6 + x.
            ({"kind": "matrix"}, [[7.0, 14.0, 21.0]]),
            # x0 * (W x + x) + x = [1, 2, 3] * [7, 8, 9] + [1, 2, 3].
            ({"kind": "matrix", "diag_scale": 1.0}, [[8.0, 18.0, 30.0]]),
            # U x = [6, 6]; V U x = [12, 12, 12] -> x0 * 12 + x.
            (
                {"kind": "low_rank", "projection_dim": 2},
                [[13.0, 26.0, 39.0]],
            ),
        ],
        ids=[
            "vector_one_layer",
            "vector_two_layers_with_bias",
            "matrix",
            "matrix_diag_scale",
            "low_rank",
        ],
    )
    def test_ones(self, kwargs, expected):
        layer = CrossNet(
            **{"num_layers": 1, **kwargs}, kernel_initializer="ones"
        )
        np.testing.assert_allclose(to_numpy(layer(X3)), expected)

    def test_vector_without_bias_has_no_bias_weights(self):
        layer = CrossNet(num_layers=3, kind="vector", use_bias=False)
        layer.build((None, 3))
        assert len(layer.weights) == 3

    def test_layers_start_different(self):
        layer = CrossNet(num_layers=2, kind="vector")
        layer.build((None, 16))
        assert not np.allclose(
            to_numpy(layer.weights[0]), to_numpy(layer.weights[2])
        )

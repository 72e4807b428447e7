import keras
import numpy as np
import pytest

from kmtl.layers import AdaptiveInformationTransfer
from kmtl.layers import BehavioralExpectationCalibrator
from kmtl.testing import LayerBattery
from kmtl.testing import LayerTestCase
from kmtl.testing import softmax
from kmtl.testing import to_numpy

RNG = np.random.default_rng(0)
PAIR = [RNG.normal(size=(4, 5)).astype("float32") for _ in range(2)]
STEPS = [
    np.array([[0.2], [0.5], [0.9], [0.1]], "float32"),
    np.array([[0.5], [0.4], [0.9], [0.3]], "float32"),
    np.array([[0.1], [0.6], [0.2], [0.3]], "float32"),
]


def _reference(p, q, wv, wq, wk):
    """NumPy AIT: softmax over the two vectors of <h2(u), h3(u)>/sqrt(k)."""
    u = np.stack([p, q], axis=1)  # [B, 2, d]
    scores = ((u @ wq) * (u @ wk)).sum(-1) / np.sqrt(wv.shape[1])
    weights = softmax(scores)
    return (weights[..., None] * (u @ wv)).sum(1), weights


class TestAdaptiveInformationTransfer(LayerTestCase):
    layer_cls = AdaptiveInformationTransfer
    batteries = {
        # The value, query and key kernels (h1, h2, h3), no biases.
        "default": LayerBattery(
            {"units": 3}, PAIR, (4, 3), expected_num_weights=(3, 0)
        )
    }
    invalid_args = [
        ({"units": 0}, "`units` must be a positive integer. Received: units=0"),
        ({"units": "3"}, "Received: units='3'"),
        ({"units": True}, "Received: units=True"),
    ]

    def test_units_default_to_the_input_width(self):
        layer = AdaptiveInformationTransfer()
        assert layer(PAIR).shape == (4, 5)
        assert tuple(layer.value_kernel.shape) == (5, 5)

    def test_matches_numpy_with_fixed_weights(self):
        rng = np.random.default_rng(1)
        p = rng.normal(size=(6, 4)).astype("float32")
        q = rng.normal(size=(6, 4)).astype("float32")
        layer = AdaptiveInformationTransfer(units=3)
        layer.build([(None, 4), (None, 4)])
        kernels = [rng.normal(size=(4, 3)).astype("float32") for _ in "vqk"]
        layer.value_kernel.assign(kernels[0])
        layer.query_kernel.assign(kernels[1])
        layer.key_kernel.assign(kernels[2])
        expected, expected_weights = _reference(p, q, *kernels)
        weights = to_numpy(layer.attention_weights([p, q]))
        assert weights.shape == (6, 2)
        np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)
        np.testing.assert_allclose(weights, expected_weights, rtol=1e-5)
        np.testing.assert_allclose(
            to_numpy(layer([p, q])), expected, rtol=1e-5, atol=1e-6
        )
        # The weights really differ between examples and vectors.
        assert weights.std() > 0.01

    def test_equal_vectors_get_equal_weights(self):
        x = np.random.default_rng(2).normal(size=(3, 4)).astype("float32")
        layer = AdaptiveInformationTransfer(units=2)
        np.testing.assert_allclose(
            to_numpy(layer.attention_weights([x, x])), 0.5, rtol=1e-6
        )
        # Then z = h1(x) whatever the weights.
        np.testing.assert_allclose(
            to_numpy(layer([x, x])), x @ to_numpy(layer.value_kernel), rtol=1e-5
        )

    def test_attention_weights_before_call(self):
        layer = AdaptiveInformationTransfer()
        assert layer.attention_weights(PAIR).shape == (4, 2)

    @pytest.mark.parametrize(
        "inputs, match",
        [
            (
                np.zeros((4, 5), "float32"),
                "list of two tensors.*Received: input_shape=\\(4, 5\\)",
            ),
            ([np.zeros((4, 5), "float32")], "list of two tensors"),
            ([np.zeros((4, 5), "float32")] * 3, "list of two tensors"),
            (
                [np.zeros((4, 5), "float32"), np.zeros((4, 6), "float32")],
                "same known last dimension",
            ),
            (
                [np.zeros((4, 2, 5), "float32")] * 2,
                "two rank-2 tensors",
            ),
        ],
    )
    def test_bad_inputs(self, inputs, match):
        with pytest.raises(ValueError, match=match):
            AdaptiveInformationTransfer()(inputs)

    def test_bad_inputs_to_attention_weights(self):
        with pytest.raises(ValueError, match="Received: a list of 1"):
            AdaptiveInformationTransfer().attention_weights([PAIR[0]])


class TestBehavioralExpectationCalibrator(LayerTestCase):
    layer_cls = BehavioralExpectationCalibrator
    batteries = {
        "default": LayerBattery(
            {"weight": 0.6},
            STEPS[:2],
            [(4, 1), (4, 1)],
            expected_num_weights=(0, 0),
            # No weights of its own to train.
            run_training_check=False,
        )
    }
    invalid_args = [
        ({"weight": -0.1}, "Received: weight=-0.1"),
        ({"weight": float("nan")}, "Received: weight=nan"),
        ({"weight": "0.6"}, "Received: weight='0.6'"),
        ({"weight": True}, "Received: weight=True"),
    ]

    def test_loss_is_hand_computed_and_inputs_pass_through(self):
        layer = BehavioralExpectationCalibrator(weight=0.6)
        outputs = layer(STEPS)
        for out, step in zip(outputs, STEPS, strict=True):
            np.testing.assert_array_equal(to_numpy(out), step)
        # Step 2 over step 1: 0.3, 0, 0, 0.2 -> mean 0.125;
        # step 3 over step 2: 0, 0.2, 0, 0 -> mean 0.05.
        (loss,) = layer.losses
        np.testing.assert_allclose(to_numpy(loss), 0.6 * (0.125 + 0.05), 1e-6)

    def test_loss_in_model_losses(self):
        a, b = keras.Input((1,)), keras.Input((1,))
        outputs = BehavioralExpectationCalibrator(weight=2.0)([a, b])
        model = keras.Model([a, b], outputs)
        model(STEPS[:2])
        (loss,) = model.losses
        np.testing.assert_allclose(to_numpy(loss), 2.0 * 0.125, rtol=1e-6)

    def test_a_monotone_funnel_costs_nothing(self):
        layer = BehavioralExpectationCalibrator()
        layer([np.full((3, 1), 0.5), np.full((3, 1), 0.2)])
        assert float(to_numpy(layer.losses[0])) == 0.0

    def test_zero_weight_adds_no_loss(self):
        layer = BehavioralExpectationCalibrator(weight=0.0)
        layer(STEPS)
        assert layer.losses == []

    @pytest.mark.parametrize(
        "inputs, match",
        [
            ([np.zeros((4, 1))], "at least two tensors"),
            (np.zeros((4, 1)), "at least two tensors"),
            ([np.zeros((4, 1)), np.zeros((4, 2))], "same shape"),
        ],
    )
    def test_bad_inputs(self, inputs, match):
        with pytest.raises(ValueError, match=match):
            BehavioralExpectationCalibrator()(inputs)

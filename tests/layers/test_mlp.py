import keras
import numpy as np
import pytest

from kmtl.layers import MLP
from kmtl.testing import LayerBattery
from kmtl.testing import LayerTestCase
from kmtl.testing import to_numpy

X3 = np.array([[1.0, 2.0, 3.0], [-1.0, -2.0, -3.0]], dtype="float32")
INPUT = np.random.default_rng(0).normal(size=(4, 3))


class TestMLP(LayerTestCase):
    layer_cls = MLP
    batteries = {
        "dropout": LayerBattery(
            {"units": (4, 2), "dropout": 0.1},
            INPUT,
            (4, 2),
            expected_num_weights=(4, 0),
        ),
        # Two bias-free kernels, two (gamma, beta); two moving stats.
        "batch_norm": LayerBattery(
            {"units": (4, 2), "use_batch_norm": True},
            INPUT,
            (4, 2),
            expected_num_weights=(6, 4),
            run_saving_check=False,
        ),
    }
    invalid_args = [
        ({"units": ()}, "`units` must be a non-empty.*Received: units=()"),
        ({"units": (4, 0)}, "Received: units=\\(4, 0\\)"),
        ({"units": 4}, "`units` must be.*Received: units=4"),
        ({"units": (4,), "dropout": 1.0}, "Received: dropout=1.0"),
        ({"units": (4,), "dropout": -0.1}, "`dropout` must be a float"),
        (
            {"units": (4,), "use_batch_norm": 1},
            "`use_batch_norm` must be a bool. Received: use_batch_norm=1",
        ),
    ]

    def test_ones_two_layers(self):
        layer = MLP(units=(2, 1), kernel_initializer="ones")
        # Row 1: relu(6, 6) -> 12. Row 2: relu(-6, -6) = 0 -> 0.
        np.testing.assert_allclose(layer(X3), [[12.0], [0.0]])

    def test_linear_output_activation(self):
        layer = MLP(
            units=(2,), kernel_initializer="ones", output_activation="linear"
        )
        np.testing.assert_allclose(layer(X3), [[6.0, 6.0], [-6.0, -6.0]])

    def test_output_activation_only_on_last_layer(self):
        layer = MLP(
            units=(2, 1),
            activation="linear",
            output_activation="relu",
            kernel_initializer="ones",
        )
        # Hidden layer stays linear: (-6, -6) -> -12 -> relu -> 0.
        np.testing.assert_allclose(layer(-X3), [[0.0], [12.0]])

    def test_batch_norm_inference(self):
        layer = MLP(units=(2,), use_batch_norm=True, kernel_initializer="ones")
        # Fresh moving statistics: mean 0, variance 1, epsilon 1e-3.
        expected = 6.0 / np.sqrt(1.0 + 1e-3)
        np.testing.assert_allclose(
            layer(X3, training=False), [[expected] * 2, [0.0, 0.0]], rtol=1e-6
        )

    def test_dropout_only_in_training(self):
        layer = MLP(units=(64,), dropout=0.5, kernel_initializer="ones")
        x = np.ones((4, 3), dtype="float32")
        np.testing.assert_allclose(
            layer(x, training=False), np.full((4, 64), 3)
        )
        dropped = to_numpy(layer(x, training=True))
        assert (dropped == 0).any()
        assert set(np.unique(dropped)) <= {0.0, 6.0}

    def test_keeps_leading_dims(self):
        layer = MLP(units=(5,))
        assert layer(np.ones((2, 4, 3))).shape == (2, 4, 5)
        assert layer.compute_output_shape((None, 4, 3)) == (None, 4, 5)


@keras.saving.register_keras_serializable(package="kmtl_tests")
class _ForgetfulMLP(MLP):
    """An MLP whose get_config drops `dropout`: the battery must catch it."""

    def get_config(self):
        config = super().get_config()
        del config["dropout"]
        return config


@pytest.mark.parametrize(
    "layer_cls, battery, match",
    [
        (
            _ForgetfulMLP,
            LayerBattery(
                {"units": (2,), "dropout": 0.3}, np.ones((2, 3)), (2, 2)
            ),
            "lacks the constructor argument `dropout`",
        ),
        (
            MLP,
            LayerBattery(
                {"units": (2,)},
                np.ones((2, 3)),
                (2, 2),
                expected_num_weights=(3, None),
            ),
            "trainable weights",
        ),
        (
            MLP,
            LayerBattery({"units": (2,)}, np.ones((2, 3)), (2, 3)),
            "output shapes",
        ),
    ],
    ids=["incomplete_get_config", "wrong_weight_count", "wrong_shape"],
)
def test_run_layer_test_catches(layer_cls, battery, match):
    with pytest.raises(AssertionError, match=match):
        battery.run(layer_cls)


def test_invalid_args_check_can_fail():
    class Case(LayerTestCase):
        layer_cls = MLP
        invalid_args = [({"units": (4,)}, "units")]

    with pytest.raises(AssertionError, match="raised no ValueError"):
        Case().test_invalid_args({"units": (4,)}, "units")
    with pytest.raises(AssertionError, match="does not match 'nothing'"):
        Case().test_invalid_args({"units": ()}, "nothing")

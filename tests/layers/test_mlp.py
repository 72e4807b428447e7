import keras
import numpy as np
import pytest

from kmtl.layers import MLP
from kmtl.testing import run_layer_test

X3 = np.array([[1.0, 2.0, 3.0], [-1.0, -2.0, -3.0]], dtype="float32")


class TestMLP:
    def setup_method(self):
        self.init_kwargs = {"units": (4, 2), "dropout": 0.1}
        self.input_data = np.random.default_rng(0).normal(size=(4, 3))

    def test_layer_battery(self):
        run_layer_test(
            MLP,
            init_kwargs=self.init_kwargs,
            input_data=self.input_data,
            expected_output_shape=(4, 2),
            expected_num_trainable_weights=4,
            expected_num_non_trainable_weights=0,
        )

    def test_layer_battery_with_batch_norm(self):
        run_layer_test(
            MLP,
            init_kwargs={"units": (4, 2), "use_batch_norm": True},
            input_data=self.input_data,
            expected_output_shape=(4, 2),
            # Two bias-free kernels, two (gamma, beta); two moving stats.
            expected_num_trainable_weights=6,
            expected_num_non_trainable_weights=4,
            run_saving_check=False,
        )

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
        dropped = keras.ops.convert_to_numpy(layer(x, training=True))
        assert (dropped == 0).any()
        assert set(np.unique(dropped)) <= {0.0, 6.0}

    def test_keeps_leading_dims(self):
        layer = MLP(units=(5,))
        assert layer(np.ones((2, 4, 3))).shape == (2, 4, 5)
        assert layer.compute_output_shape((None, 4, 3)) == (None, 4, 5)

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            ({"units": ()}, "`units` must be a non-empty.*Received: units=()"),
            ({"units": (4, 0)}, "Received: units=\\(4, 0\\)"),
            ({"units": 4}, "`units` must be.*Received: units=4"),
            ({"units": (4,), "dropout": 1.0}, "Received: dropout=1.0"),
            ({"units": (4,), "dropout": -0.1}, "`dropout` must be a float"),
            (
                {"units": (4,), "use_batch_norm": 1},
                "`use_batch_norm` must be a bool. Received: use_batch_norm=1",
            ),
        ],
    )
    def test_invalid_args(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            MLP(**kwargs)


@keras.saving.register_keras_serializable(package="kmtl_tests")
class _ForgetfulMLP(MLP):
    """An MLP whose get_config drops `dropout`: the battery must catch it."""

    def get_config(self):
        config = super().get_config()
        del config["dropout"]
        return config


class TestRunLayerTestCanFail:
    def test_catches_incomplete_get_config(self):
        with pytest.raises(
            AssertionError, match="lacks the constructor argument `dropout`"
        ):
            run_layer_test(
                _ForgetfulMLP,
                init_kwargs={"units": (2,), "dropout": 0.3},
                input_data=np.ones((2, 3)),
                expected_output_shape=(2, 2),
            )

    def test_catches_wrong_weight_count(self):
        with pytest.raises(AssertionError, match="trainable weights"):
            run_layer_test(
                MLP,
                init_kwargs={"units": (2,)},
                input_data=np.ones((2, 3)),
                expected_output_shape=(2, 2),
                expected_num_trainable_weights=3,
            )

    def test_catches_wrong_shape(self):
        with pytest.raises(AssertionError, match="output shapes"):
            run_layer_test(
                MLP,
                init_kwargs={"units": (2,)},
                input_data=np.ones((2, 3)),
                expected_output_shape=(2, 3),
            )

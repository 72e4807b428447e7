import keras
import numpy as np
import pytest

from kmtl.layers import PartitionedNormalization
from kmtl.testing import LayerBattery
from kmtl.testing import LayerTestCase
from kmtl.testing import randomize
from kmtl.testing import to_numpy

EPS = 1e-3
X = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
IDS = np.array([0, 1, 2, 0, 1, 2, 0, 1], dtype="int32")


def _random_affine(layer, rng):
    weights = (
        layer.gamma,
        layer.beta,
        layer.scenario_gamma,
        layer.scenario_beta,
    )
    randomize(weights, rng)


def _affine(layer, ids):
    scale = to_numpy(layer.gamma) * to_numpy(layer.scenario_gamma)[ids]
    shift = to_numpy(layer.beta) + to_numpy(layer.scenario_beta)[ids]
    return scale, shift


class TestPartitionedNormalization(LayerTestCase):
    layer_cls = PartitionedNormalization
    batteries = {
        # gamma, beta, scenario_gamma, scenario_beta; moving stats and
        # their update counts.
        "default": LayerBattery(
            {"num_scenarios": 3, "momentum": 0.9},
            [X, IDS],
            (8, 4),
            expected_num_weights=(4, 4),
        )
    }
    invalid_args = [
        (
            {"num_scenarios": 0},
            "`num_scenarios` must be a positive integer. "
            "Received: num_scenarios=0",
        ),
        (
            {"num_scenarios": 2, "momentum": 1.0},
            "`momentum` must be .*Received: momentum=1.0",
        ),
        (
            {"num_scenarios": 2, "epsilon": 0.0},
            "`epsilon` must be .*Received: epsilon=0.0",
        ),
    ]

    def test_training_output_uses_per_scenario_batch_statistics(self):
        layer = PartitionedNormalization(num_scenarios=4)
        layer.build([(None, 4), (None,)])
        _random_affine(layer, np.random.default_rng(1))
        out = to_numpy(layer([X, IDS], training=True))
        scale, shift = _affine(layer, IDS)
        expected = np.empty_like(X)
        for p in np.unique(IDS):
            rows = IDS == p
            mean = X[rows].mean(0)
            var = X[rows].var(0)
            expected[rows] = (X[rows] - mean) / np.sqrt(var + EPS)
        expected = expected * scale + shift
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)

    def test_training_updates_moving_statistics_of_present_scenarios(self):
        layer = PartitionedNormalization(num_scenarios=4, momentum=0.9)
        ids = np.array([0, 1, 0, 1, 0, 2], dtype="int32")  # 3 alone, 2 once
        x = X[:6]
        layer([x, ids], training=True)
        mean, var = to_numpy(layer.moving_mean), to_numpy(layer.moving_variance)
        # A first update takes the batch's statistics (bias correction).
        for p in (0, 1):
            rows = ids == p
            np.testing.assert_allclose(
                mean[p], x[rows].mean(0), rtol=1e-5, atol=1e-6
            )
            np.testing.assert_allclose(
                var[p], x[rows].var(0, ddof=1), rtol=1e-5
            )
        # One example: the mean moves, the variance (undefined) does not.
        np.testing.assert_allclose(mean[2], x[5], rtol=1e-5)
        np.testing.assert_array_equal(var[2], 1.0)
        # Absent scenario: unchanged.
        np.testing.assert_array_equal(mean[3], 0.0)
        np.testing.assert_array_equal(var[3], 1.0)
        np.testing.assert_array_equal(
            to_numpy(layer.mean_updates), [1, 1, 1, 0]
        )
        np.testing.assert_array_equal(
            to_numpy(layer.variance_updates), [1, 1, 0, 0]
        )
        # A second update of scenario 0: weight 0.1 / (1 - 0.9^2) on the
        # new batch.
        second = X[2:8] * 3.0
        layer([second, ids], training=True)
        rows = ids == 0
        rate = 0.1 / (1 - 0.9**2)
        np.testing.assert_allclose(
            to_numpy(layer.moving_mean)[0],
            mean[0] + rate * (second[rows].mean(0) - mean[0]),
            rtol=1e-5,
        )
        np.testing.assert_allclose(
            to_numpy(layer.moving_variance)[0],
            var[0] + rate * (second[rows].var(0, ddof=1) - var[0]),
            rtol=1e-5,
        )

    def test_moving_variance_forgets_its_start_at_any_scale(self):
        # Inputs of the scale of embeddings (std 0.04, variance 1.6e-3):
        # after 50 updates at momentum 0.99 a plain moving average still
        # holds 0.99^50 = 60 % of its start (variance 1, 370x too large).
        rng = np.random.default_rng(4)
        layer = PartitionedNormalization(num_scenarios=2, momentum=0.99)
        ids = np.arange(256, dtype="int32") % 2
        for _ in range(50):
            x = rng.normal(scale=0.04, size=(256, 4)).astype("float32")
            layer([x, ids], training=True)
        np.testing.assert_allclose(
            to_numpy(layer.moving_variance), 0.04**2, rtol=0.1
        )

    def test_inference_output_does_not_depend_on_the_batch(self):
        rng = np.random.default_rng(2)
        layer = PartitionedNormalization(num_scenarios=3)
        layer.build([(None, 4), (None,)])
        _random_affine(layer, rng)
        layer.moving_mean.assign(rng.normal(size=(3, 4)))
        layer.moving_variance.assign(rng.uniform(0.5, 2.0, size=(3, 4)))
        one = to_numpy(layer([X[:1], IDS[:1]]))
        scale, shift = _affine(layer, IDS[:1])
        mean = to_numpy(layer.moving_mean)[0]
        var = to_numpy(layer.moving_variance)[0]
        np.testing.assert_allclose(
            one,
            (X[:1] - mean) / np.sqrt(var + EPS) * scale + shift,
            rtol=1e-5,
        )
        for batch in (
            [0, 1, 2, 3],
            [0, 4, 5, 6, 7],
            [0] * 5,
        ):
            out = to_numpy(layer([X[batch], IDS[batch]], training=False))
            np.testing.assert_allclose(out[:1], one, rtol=1e-6, atol=1e-6)

    def test_moving_statistics_converge_in_fit(self):
        rng = np.random.default_rng(3)
        n, num = 4096, 3
        true_mean = np.array([[-2.0, 0.0], [1.0, 3.0], [4.0, -1.0]])
        true_std = np.array([[0.5, 1.0], [2.0, 0.3], [1.0, 1.5]])
        ids = rng.integers(0, num, size=n).astype("int32")
        x = rng.normal(size=(n, 2)) * true_std[ids] + true_mean[ids]
        x_in = keras.Input(shape=(2,))
        s_in = keras.Input(shape=(), dtype="int32")
        layer = PartitionedNormalization(num_scenarios=num, momentum=0.9)
        model = keras.Model(
            [x_in, s_in], keras.layers.Dense(1)(layer([x_in, s_in]))
        )
        model.compile(optimizer="sgd", loss="mse")
        model.fit(
            [x.astype("float32"), ids],
            np.zeros((n, 1)),
            batch_size=128,
            epochs=2,
            verbose=0,
        )
        np.testing.assert_allclose(
            to_numpy(layer.moving_mean), true_mean, atol=0.15
        )
        np.testing.assert_allclose(
            to_numpy(layer.moving_variance), true_std**2, rtol=0.2
        )

    def test_scenario_of_shape_b1(self):
        layer = PartitionedNormalization(num_scenarios=3)
        flat = to_numpy(layer([X, IDS]))
        column = to_numpy(layer([X, IDS[:, None]]))
        np.testing.assert_array_equal(flat, column)

    @pytest.mark.skipif(
        keras.backend.backend() != "tensorflow",
        reason="ids are checked in the graph on TensorFlow only",
    )
    def test_out_of_range_scenario_is_an_error(self):
        layer = PartitionedNormalization(num_scenarios=2)
        with pytest.raises(Exception, match=r"must hold ids in \[0, 2\)"):
            layer([X, IDS], training=True)

    def test_single_input_is_rejected(self):
        layer = PartitionedNormalization(num_scenarios=2)
        with pytest.raises(ValueError, match=r"two inputs, `\[x, scenario\]`"):
            layer(X)

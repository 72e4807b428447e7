import keras
import numpy as np

from kmtl.layers import ConsistencyBound
from kmtl.testing import LayerBattery
from kmtl.testing import LayerTestCase
from kmtl.testing import to_numpy

RNG = np.random.default_rng(1)
P = [RNG.uniform(0.05, 0.95, (6, 1)).astype("float32") for _ in range(3)]


def _kl(p, q):
    return p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))


class TestConsistencyBound(LayerTestCase):
    layer_cls = ConsistencyBound
    batteries = {
        "default": LayerBattery(
            {"weight": 0.5},
            P,
            (6, 1),
            expected_num_weights=(0, 0),
            run_training_check=False,
        )
    }
    invalid_args = [({"weight": -1.0}, "`weight` must be")]

    def test_returns_the_joint_and_adds_the_symmetric_kl(self):
        layer = ConsistencyBound(0.5)
        out = to_numpy(layer(P))
        np.testing.assert_array_equal(out, P[2])
        q = P[0] * P[1]
        expected = 0.5 * np.mean(_kl(P[2], q) + _kl(q, P[2]))
        (loss,) = layer.losses
        np.testing.assert_allclose(to_numpy(loss), expected, rtol=1e-5)

    def test_zero_weight_adds_nothing(self):
        layer = ConsistencyBound(0.0)
        layer(P)
        assert layer.losses == []

    def test_the_bound_pulls_the_joint_towards_the_product(self):
        inputs = keras.Input((1,))
        logit = keras.layers.Dense(1, name="joint")(inputs)
        joint = keras.layers.Activation("sigmoid")(logit)
        target = np.full((256, 1), 0.2 * 0.5, "float32")
        out = ConsistencyBound(1.0)(
            [
                np.full((1, 1), 0.2, "float32"),
                np.full((1, 1), 0.5, "float32"),
                joint,
            ]
        )
        model = keras.Model(inputs, out)
        model.compile(optimizer=keras.optimizers.Adam(0.1), loss=None)
        model.fit(np.ones((256, 1), "float32"), epochs=30, verbose=0)
        got = model.predict(np.ones((4, 1), "float32"), verbose=0)
        np.testing.assert_allclose(got[:, 0], target[:4, 0], atol=0.01)

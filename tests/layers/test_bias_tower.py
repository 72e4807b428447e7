import numpy as np

from kmtl.layers import BiasTower
from kmtl.testing import LayerBattery
from kmtl.testing import LayerTestCase
from kmtl.testing import to_numpy

X = np.random.default_rng(1).normal(size=(6, 3)).astype("float32")
PRESENT = np.array([[1], [1], [0], [1], [0], [1]], dtype="float32")


class TestBiasTower(LayerTestCase):
    layer_cls = BiasTower
    batteries = {
        "default": LayerBattery(
            {"num_logits": 2, "units": (4,)},
            [X, PRESENT],
            (6, 2),
            expected_num_weights=(4, 0),
        ),
        "linear": LayerBattery(
            {"num_logits": 1, "units": (), "dropout": 0.0},
            [X, PRESENT],
            (6, 1),
            expected_num_weights=(2, 0),
        ),
    }
    invalid_args = [
        ({"num_logits": 0}, "`num_logits` must be a positive integer"),
        ({"num_logits": 1, "dropout": 1.0}, "`dropout` must be a float in"),
    ]

    def test_missing_bias_gives_a_zero_logit(self):
        tower = BiasTower(2, units=(4,))
        out = to_numpy(tower([X, PRESENT]))
        everywhere = to_numpy(tower([X, np.ones_like(PRESENT)]))
        kept = PRESENT[:, 0] == 1
        np.testing.assert_array_equal(out[~kept], 0.0)
        np.testing.assert_array_equal(out[kept], everywhere[kept])
        assert np.any(everywhere[~kept] != 0.0)

    def test_linear_tower_is_an_affine_map(self):
        tower = BiasTower(1, units=(), dropout=0.0)
        out = to_numpy(tower([X, PRESENT]))
        kernel, bias = (to_numpy(w) for w in tower.weights)
        np.testing.assert_allclose(
            out, (X @ kernel + bias) * PRESENT, rtol=1e-5, atol=1e-6
        )

    def test_training_drops_the_logit_of_some_rows(self):
        tower = BiasTower(1, units=(), dropout=0.5, seed=3)
        rows = np.ones((2000, 3), "float32")
        out = to_numpy(
            tower([rows, np.ones((2000, 1), "float32")], training=True)
        )
        dropped = np.mean(out[:, 0] == 0.0)
        assert 0.45 < dropped < 0.55
        inference = to_numpy(tower([rows, np.ones((2000, 1), "float32")]))
        assert np.all(inference != 0.0)

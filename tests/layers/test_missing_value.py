import numpy as np

from kmtl.layers import MissingValueLayer
from kmtl.testing import LayerBattery
from kmtl.testing import LayerTestCase
from kmtl.testing import to_numpy

X = np.random.default_rng(1).normal(size=(5, 3)).astype("float32")
MASK = np.array(
    [[1, 1, 1], [0, 1, 1], [1, 0, 0], [0, 0, 0], [1, 1, 0]], dtype="float32"
)


class TestMissingValueLayer(LayerTestCase):
    layer_cls = MissingValueLayer
    batteries = {
        "default": LayerBattery(
            {}, [X, MASK], (5, 3), expected_num_weights=(1, 0)
        )
    }
    invalid_args = [({"fill_scale": 0.0}, "`fill_scale` must be")]

    def test_missing_entries_take_the_learned_fill(self):
        layer = MissingValueLayer(fill_scale=2.0)
        layer.build([(None, 3), (None, 3)])
        layer.fill.assign(np.array([1.0, -2.0, 0.5], "float32"))
        out = to_numpy(layer([X, MASK]))
        fill = np.array([2.0, -4.0, 1.0], "float32")
        np.testing.assert_allclose(out, np.where(MASK == 1, X, fill), rtol=1e-6)

import keras
import numpy as np
import pytest

from kmtl.layers import ScenarioExtractionLayer
from kmtl.testing import LayerBattery
from kmtl.testing import LayerTestCase
from kmtl.testing import randomize
from kmtl.testing import softmax
from kmtl.testing import to_numpy

X = np.random.default_rng(0).normal(size=(4, 5)).astype("float32")
IDS = np.array([0, 1, 2, 0], dtype="int32")


def _reference(layer, x, ids):
    """NumPy HiNet scenario extraction: [v_sh, v_sp, v_san]."""
    s, k_sp, k_sh = (
        layer.num_scenarios,
        layer.num_specific_experts,
        layer.num_shared_experts,
    )
    k0, b0 = (w.numpy() for w in layer.experts.weights)
    experts = np.maximum(np.einsum("bd,edh->beh", x, k0) + b0, 0)
    experts = experts.reshape(len(x), s * k_sp + k_sh, -1)
    sp_kernel, sp_bias = (w.numpy() for w in layer.specific_gate.weights)
    sh_kernel, sh_bias = (w.numpy() for w in layer.shared_gate.weights)
    sp_gate = softmax((x @ sp_kernel).reshape(len(x), s, k_sp) + sp_bias)
    sh_gate = softmax(x @ sh_kernel + sh_bias.reshape(-1))
    per_scenario = np.einsum(
        "bsk,bskh->bsh",
        sp_gate,
        experts[:, : s * k_sp].reshape(len(x), s, k_sp, -1),
    )
    shared = np.einsum("bk,bkh->bh", sh_gate, experts[:, s * k_sp :])
    own = per_scenario[np.arange(len(x)), ids]
    embedding = layer.scenario_embeddings.numpy()[ids]
    attention = softmax(
        embedding @ layer.attention_kernel.numpy()
        + layer.attention_bias.numpy()
    )
    attention[np.arange(len(x)), ids] = 0.0
    attentive = np.einsum("bs,bsh->bh", attention, per_scenario)
    return np.concatenate([shared, own, attentive], axis=-1)


class TestScenarioExtractionLayer(LayerTestCase):
    layer_cls = ScenarioExtractionLayer
    batteries = {
        "default": LayerBattery(
            {
                "num_scenarios": 3,
                "num_shared_experts": 2,
                "num_specific_experts": 2,
                "expert_units": (4, 3),
            },
            [X, IDS],
            (4, 9),
            expected_num_weights=(11, 0),
        )
    }
    invalid_args = [
        ({"num_scenarios": 0}, "Received: num_scenarios=0"),
        (
            {"num_scenarios": 2, "num_shared_experts": 0},
            "Received: num_shared_experts=0",
        ),
        (
            {"num_scenarios": 2, "num_specific_experts": 1.5},
            "Received: num_specific_experts=1.5",
        ),
        ({"num_scenarios": 2, "expert_units": ()}, "expert_units=\\(\\)"),
        (
            {"num_scenarios": 2, "scenario_embedding_dim": 0},
            "scenario_embedding_dim=0",
        ),
    ]

    def setup_method(self):
        # The generator of X, past X's draw.
        self.rng = np.random.default_rng(0)
        self.rng.normal(size=X.shape)

    def test_matches_numpy_reference(self):
        layer = ScenarioExtractionLayer(
            num_scenarios=4,
            num_shared_experts=3,
            num_specific_experts=2,
            expert_units=(5,),
            kernel_initializer=keras.initializers.RandomNormal(
                stddev=1.0, seed=2
            ),
        )
        x = self.rng.normal(size=(16, 6)).astype("float32")
        ids = (np.arange(16) % 4).astype("int32")
        layer([x, ids])
        randomize([layer.scenario_embeddings], self.rng)
        np.testing.assert_allclose(
            to_numpy(layer([x, ids])), _reference(layer, x, ids), atol=1e-5
        )

    def test_attention_skips_the_own_scenario(self):
        layer = ScenarioExtractionLayer(num_scenarios=1, expert_units=(3,))
        out = to_numpy(layer([X, np.zeros(4, dtype="int32")]))
        np.testing.assert_array_equal(out[:, 6:], 0.0)
        assert np.abs(out[:, :6]).sum() > 0

    def test_specific_part_follows_the_scenario(self):
        layer = ScenarioExtractionLayer(num_scenarios=3, expert_units=(3,))
        x = np.repeat(X[:1], 3, axis=0)
        out = to_numpy(layer([x, np.arange(3)]))
        np.testing.assert_allclose(out[0, :3], out[1, :3], rtol=1e-6)
        assert not np.allclose(out[0, 3:6], out[1, 3:6])

    def test_wrong_input(self):
        layer = ScenarioExtractionLayer(num_scenarios=2)
        with pytest.raises(ValueError, match=r"takes `\[x, scenario\]`"):
            layer(X)

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


def _factored_reference(layer, x, ids):
    """NumPy factored scenario extraction: [v_sh, v_sp, v_san]."""
    weights = [w.numpy() for w in layer.experts.weights]
    shared_experts = np.repeat(x[:, None], layer.num_shared_experts, 1)
    for kernel, bias in zip(weights[::2], weights[1::2], strict=True):
        z = np.einsum("bei,eio->beo", shared_experts, kernel) + bias
        shared_experts = np.maximum(z, 0)
    sh_kernel, sh_bias = (w.numpy() for w in layer.shared_gate.weights)
    sh_gate = softmax(x @ sh_kernel + sh_bias.reshape(-1))
    shared = np.einsum("bk,bkh->bh", sh_gate, shared_experts)

    def specific(b, j):
        logits = x[b] @ layer.specific_gate_kernel.numpy()
        gate = softmax(
            logits * layer.scenario_gate_scale.numpy()[j]
            + layer.scenario_gate_bias.numpy()[j]
        )
        h = np.repeat(x[b][None], layer.num_specific_experts, 0)  # [K, d]
        for kernel, bias, scale, shift in zip(
            layer.specific_kernels,
            layer.specific_biases,
            layer.scenario_scales,
            layer.scenario_biases,
            strict=True,
        ):
            z = np.einsum("ki,kio->ko", h, kernel.numpy())
            z = z * scale.numpy()[:, j] + bias.numpy() + shift.numpy()[:, j]
            h = np.maximum(z, 0)
        return gate @ h

    logits = (
        layer.scenario_embeddings.numpy()[ids] @ layer.attention_kernel.numpy()
        + layer.attention_bias.numpy()
    )
    attention = softmax(logits)
    own, attentive = [], []
    for b, i in enumerate(ids):
        own.append(specific(b, i))
        order = [j for j in np.argsort(-logits[b]) if j != i]
        picked = order[: layer.attention_top_k]
        attentive.append(
            sum((attention[b, j] * specific(b, j) for j in picked), 0 * own[-1])
        )
    return np.concatenate([shared, np.stack(own), np.stack(attentive)], -1)


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
        ),
        "factored": LayerBattery(
            {
                "num_scenarios": 3,
                "num_shared_experts": 2,
                "num_specific_experts": 2,
                "expert_units": (4, 3),
                "specific_kind": "factored",
                "attention_top_k": 1,
            },
            [X, IDS],
            (4, 9),
            # Shared experts 4, shared gate 2, scenario gate 3, specific
            # gate 3, then 4 per expert layer.
            expected_num_weights=(20, 0),
        ),
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
        (
            {"num_scenarios": 2, "specific_kind": "low_rank"},
            "`specific_kind`.*Received: specific_kind='low_rank'",
        ),
        (
            {"num_scenarios": 2, "attention_top_k": -1},
            "Received: attention_top_k=-1",
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

    def _factored(self, num_scenarios, top_k):
        layer = ScenarioExtractionLayer(
            num_scenarios=num_scenarios,
            num_shared_experts=2,
            num_specific_experts=2,
            expert_units=(5, 4),
            specific_kind="factored",
            attention_top_k=top_k,
            kernel_initializer=keras.initializers.RandomNormal(
                stddev=1.0, seed=2
            ),
        )
        x = self.rng.normal(size=(12, 6)).astype("float32")
        ids = (np.arange(12) % num_scenarios).astype("int32")
        layer([x, ids])
        # Every factor away from its initial value, so a wrong gather shows.
        randomize(
            [
                layer.scenario_embeddings,
                layer.scenario_gate_scale,
                layer.scenario_gate_bias,
                *layer.scenario_scales,
                *layer.scenario_biases,
            ],
            self.rng,
        )
        return layer, x, ids

    def test_factored_matches_numpy_reference(self):
        # 6 scenarios, 2 attended: the SAN keeps the top 2 of 5 others.
        layer, x, ids = self._factored(6, 2)
        np.testing.assert_allclose(
            to_numpy(layer([x, ids])),
            _factored_reference(layer, x, ids),
            atol=1e-4,
        )

    def test_factored_attends_to_every_other_scenario_when_few(self):
        # S - 1 <= attention_top_k: the SAN weights are the paper's,
        # softmax over S without the own scenario (sum 1 - a_i).
        layer, x, ids = self._factored(3, 5)
        gates = layer.named_gate_weights([x, ids])
        attention = to_numpy(gates["attention"])
        logits = (
            layer.scenario_embeddings.numpy()[ids]
            @ layer.attention_kernel.numpy()
            + layer.attention_bias.numpy()
        )
        expected = softmax(logits)
        expected[np.arange(len(ids)), ids] = 0.0
        np.testing.assert_allclose(attention, expected, rtol=1e-5)
        np.testing.assert_allclose(
            to_numpy(layer([x, ids])),
            _factored_reference(layer, x, ids),
            atol=1e-4,
        )

    def test_factored_starts_as_shared_specific_experts(self):
        # Scales at 1 and scenario biases at 0: scenarios differ only by
        # their gates, so with one specific expert they all agree.
        layer = ScenarioExtractionLayer(
            num_scenarios=50,
            num_specific_experts=1,
            expert_units=(3,),
            specific_kind="factored",
            attention_top_k=0,
        )
        x = np.repeat(X[:1], 3, axis=0)
        out = to_numpy(layer([x, np.array([0, 7, 49])]))
        np.testing.assert_allclose(out[0], out[1], rtol=1e-6)
        np.testing.assert_allclose(out[0], out[2], rtol=1e-6)
        np.testing.assert_array_equal(out[:, 6:], 0.0)

    def test_gate_weights(self):
        for kind in ("full", "factored"):
            layer = ScenarioExtractionLayer(
                num_scenarios=5,
                num_shared_experts=3,
                expert_units=(4,),
                specific_kind=kind,
                attention_top_k=2,
            )
            gates = {
                k: to_numpy(v)
                for k, v in layer.named_gate_weights([X, IDS]).items()
            }
            assert gates["shared"].shape == (4, 3)
            assert gates["routed"].shape == (4, 2)
            assert gates["attention"].shape == (4, 5)
            np.testing.assert_allclose(gates["shared"].sum(-1), 1, rtol=1e-5)
            np.testing.assert_allclose(gates["routed"].sum(-1), 1, rtol=1e-5)
            own = gates["attention"][np.arange(4), IDS]
            np.testing.assert_array_equal(own, 0.0)
            attended = (gates["attention"] > 0).sum(-1)
            np.testing.assert_array_equal(attended, 4 if kind == "full" else 2)

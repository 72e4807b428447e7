import keras
import numpy as np
import pytest

from kmtl.layers import ExpertSelectionLayer
from kmtl.testing import LayerBattery
from kmtl.testing import LayerTestCase
from kmtl.testing import randomize
from kmtl.testing import softmax
from kmtl.testing import to_numpy

KWARGS = {
    "num_gates": 3,
    "num_experts": 4,
    "top_k_specific": 1,
    "top_k_shared": 1,
    "expert_units": (4, 3),
    "noise_stddev": 0.1,
}
X = np.random.default_rng(0).normal(size=(4, 5)).astype("float32")
IDS = np.array([0, 1, 2, 0], dtype="int32")


def _kl(p, q):
    """KL(p || q) over the last axis, with 0 log 0 = 0."""
    ratio = np.where(p > 0, p / np.where(p > 0, q, 1.0), 1.0)
    return np.sum(np.where(p > 0, p * np.log(ratio), 0.0), axis=-1)


def _all_gate_logits(layer, x, targets, context=None, noise=None):
    """Every gate's logits `[B, m, n]`, built gate by gate from the weights.

    `noise` (`[B, n]`, shared mode) is added to each example's own gate.
    """
    gates, n = layer.num_gates, layer.num_experts
    embeddings = layer.gate_embeddings.numpy()
    kernel, bias = layer.gate_kernel.numpy(), layer.gate_bias.numpy()
    parts = [x] if context is None else [x, context]
    if layer.gate_kind == "per_gate":
        z = np.concatenate(parts + [embeddings[targets]], axis=-1)
        return (z @ kernel + bias).reshape(-1, gates, n)
    z = np.concatenate(parts, axis=-1)
    w, u = kernel[: z.shape[1]], kernel[z.shape[1] :]
    bias = bias.reshape(gates, n)
    logits = np.stack(
        [z @ w + bias[j] + embeddings[j] @ u for j in range(gates)], axis=1
    ).astype("float64")
    if noise is not None:
        logits[np.arange(len(x)), targets] += noise
    return logits


def _reference(layer, x, targets, context=None, noise=None):
    """NumPy AESM2 selection for one target gate per example.

    Returns (specific sets, shared sets, weights [B, n], output [B, h],
    specific KL [B, n], shared KL [B, n]).
    """
    gates = layer.num_gates
    logits = _all_gate_logits(layer, x, targets, context, noise)
    g_tilde = softmax(logits, axis=1).transpose(0, 2, 1)  # [B, n, m]
    one_hot = np.eye(gates)[targets]  # [B, m]
    uniform = np.full(gates, 1.0 / gates)
    kl_sp = _kl(one_hot[:, None, :], g_tilde)  # [B, n]
    kl_sh = _kl(np.broadcast_to(uniform, g_tilde.shape), g_tilde)
    k_sp, k_sh = layer.top_k_specific, layer.top_k_shared
    specific = [set(np.argsort(row)[:k_sp]) for row in kl_sp]
    shared = [set(np.argsort(row)[:k_sh]) for row in kl_sh]
    own = logits[np.arange(len(x)), targets]  # [B, n]
    selected = np.zeros_like(own, dtype=bool)
    for b in range(len(x)):
        selected[b, list(specific[b] | shared[b])] = True
    weights = softmax(np.where(selected, own, -np.inf), axis=-1)
    k0, b0 = (w.numpy() for w in layer.experts.weights)
    experts = np.maximum(np.einsum("bd,edh->beh", x, k0) + b0, 0)
    output = np.einsum("bn,bnh->bh", weights, experts)
    return specific, shared, weights, output, kl_sp, kl_sh


class TestExpertSelectionLayer(LayerTestCase):
    layer_cls = ExpertSelectionLayer
    batteries = {
        "default": LayerBattery(
            KWARGS, [X, IDS], (4, 3), expected_num_weights=(7, 0)
        ),
        "per_gate_outputs_with_context": LayerBattery(
            {**KWARGS, "num_gates": 2, "per_gate_outputs": True},
            [X, X[:, :2]],
            [(4, 3), (4, 3)],
            expected_num_weights=(7, None),
        ),
    }
    invalid_args = [
        ({"num_gates": 0}, "Received: num_gates=0"),
        (
            {"num_gates": 2, "num_experts": 3, "top_k_specific": 4},
            "`top_k_specific` must be at most `num_experts` \\(3\\)."
            " Received: top_k_specific=4",
        ),
        (
            {"num_gates": 2, "num_experts": 3, "top_k_shared": 5},
            "Received: top_k_shared=5",
        ),
        (
            {"num_gates": 2, "top_k_specific": 0, "top_k_shared": 0},
            "At least one expert.*top_k_specific=0, top_k_shared=0",
        ),
        ({"num_gates": 2, "noise_stddev": -1.0}, "noise_stddev=-1.0"),
        ({"num_gates": 2, "aux_loss_weight": "x"}, "aux_loss_weight='x'"),
        ({"num_gates": 2, "expert_units": ()}, "expert_units=\\(\\)"),
        ({"num_gates": 2, "per_gate_outputs": 1}, "per_gate_outputs=1"),
        ({"num_gates": 2, "seed": 1.5}, "seed=1.5"),
        (
            {"num_gates": 2, "gate_kind": "x"},
            "`gate_kind` must be one of.*Received: gate_kind='x'",
        ),
    ]

    def setup_method(self):
        # The generator of X, past X's draw.
        self.rng = np.random.default_rng(0)
        self.rng.normal(size=X.shape)

    def _fixed_layer(self, **kwargs):
        layer = ExpertSelectionLayer(
            **{
                "num_gates": 4,
                "num_experts": 6,
                "top_k_specific": 2,
                "top_k_shared": 2,
                "expert_units": (3,),
                "gate_embedding_dim": 3,
                "kernel_initializer": keras.initializers.RandomNormal(
                    stddev=1.0, seed=3
                ),
                **kwargs,
            }
        )
        x = self.rng.normal(size=(32, 5)).astype("float32")
        ids = (np.arange(32) % 4).astype("int32")
        layer([x, ids])
        randomize([layer.gate_embeddings], self.rng)
        return layer, x, ids

    def test_selection_is_top_k_of_minus_kl(self):
        layer, x, ids = self._fixed_layer()
        selection = layer.select_experts([x, ids])
        specific, shared, weights, _, _, _ = _reference(layer, x, ids)
        got_sp = to_numpy(selection["specific"])[:, 0]
        got_sh = to_numpy(selection["shared"])[:, 0]
        assert [set(row) for row in got_sp] == specific
        assert [set(row) for row in got_sh] == shared
        # Not a trivial selection: it varies across examples.
        assert len({frozenset(s) for s in specific}) > 1
        np.testing.assert_allclose(
            to_numpy(selection["weights"])[:, 0], weights, atol=1e-5
        )

    def test_output_and_aux_loss_match_reference(self):
        layer, x, ids = self._fixed_layer(aux_loss_weight=0.5)
        _, _, weights, output, kl_sp, kl_sh = _reference(layer, x, ids)
        np.testing.assert_allclose(to_numpy(layer([x, ids])), output, atol=1e-5)
        # Weights vanish outside the selection and sum to 1 inside.
        assert ((weights > 0).sum(-1) <= 4).all()
        np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)
        sp = np.sort(kl_sp, axis=-1)[:, :2].mean()
        sh = np.sort(kl_sh, axis=-1)[:, :2].mean()
        (loss,) = layer.losses
        np.testing.assert_allclose(to_numpy(loss), 0.5 * (sp + sh), rtol=1e-4)

    def test_per_gate_outputs_route_every_gate(self):
        layer = ExpertSelectionLayer(
            num_gates=3,
            num_experts=4,
            top_k_specific=1,
            top_k_shared=2,
            expert_units=(3,),
            per_gate_outputs=True,
            kernel_initializer=keras.initializers.RandomNormal(
                stddev=1.0, seed=5
            ),
        )
        x = self.rng.normal(size=(8, 5)).astype("float32")
        context = self.rng.normal(size=(8, 2)).astype("float32")
        outputs = layer([x, context])
        assert len(outputs) == 3
        for task, output in enumerate(outputs):
            targets = np.full(8, task)
            *_, expected, _, _ = _reference(layer, x, targets, context)
            np.testing.assert_allclose(to_numpy(output), expected, atol=1e-5)

    def test_aux_losses_in_model_losses(self):
        x_in = keras.Input(shape=(5,))
        ids_in = keras.Input(shape=(), dtype="int32")
        h = ExpertSelectionLayer(num_gates=3, num_experts=4, expert_units=(4,))(
            [x_in, ids_in]
        )
        heads = ExpertSelectionLayer(
            num_gates=2, num_experts=4, expert_units=(2,), per_gate_outputs=True
        )(h)
        model = keras.Model([x_in, ids_in], heads)
        model([X, IDS])
        assert len(model.losses) == 2
        assert all(float(to_numpy(loss)) >= 0.0 for loss in model.losses)

    def test_noise_only_in_training(self):
        layer = ExpertSelectionLayer(
            **{**KWARGS, "noise_stddev": 1.0, "seed": 1}
        )
        inputs = [X, IDS]
        a, b = layer(inputs, training=False), layer(inputs, training=False)
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
        c, d = layer(inputs, training=True), layer(inputs, training=True)
        assert not np.allclose(to_numpy(c), to_numpy(d))
        assert not np.allclose(to_numpy(c), to_numpy(a))

    def test_no_noise_when_disabled(self):
        layer = ExpertSelectionLayer(**{**KWARGS, "noise_stddev": 0.0})
        inputs = [X, IDS]
        np.testing.assert_array_equal(
            to_numpy(layer(inputs, training=True)), to_numpy(layer(inputs))
        )

    def test_wrong_input_structure(self):
        layer = ExpertSelectionLayer(num_gates=2, num_experts=3)
        with pytest.raises(ValueError, match=r"takes `\[x, ids\]`"):
            layer(X)


class TestSharedGates(LayerTestCase):
    """`gate_kind="shared"`: the closed form equals the definition."""

    layer_cls = ExpertSelectionLayer
    batteries = {
        "default": LayerBattery(
            {**KWARGS, "gate_kind": "shared"},
            [X, IDS],
            (4, 3),
            expected_num_weights=(7, 0),
        )
    }

    def setup_method(self):
        self.rng = np.random.default_rng(1)

    def _layer(self, gates=5, **kwargs):
        layer = ExpertSelectionLayer(
            **{
                "num_gates": gates,
                "num_experts": 6,
                "top_k_specific": 2,
                "top_k_shared": 2,
                "expert_units": (3,),
                "gate_embedding_dim": 3,
                "gate_kind": "shared",
                "noise_stddev": 1.0,
                "kernel_initializer": keras.initializers.RandomNormal(
                    stddev=1.0, seed=3
                ),
                **kwargs,
            }
        )
        x = self.rng.normal(size=(40, 5)).astype("float32")
        ids = (np.arange(40) % gates).astype("int32")
        inputs = [x] if layer.per_gate_outputs else [x, ids]
        layer(inputs)
        randomize([layer.gate_embeddings, layer.gate_bias], self.rng)
        return layer, x, ids

    def _fix_noise(self, layer, shape):
        noise = self.rng.normal(size=shape).astype("float32")
        layer._noise = lambda _: noise
        return noise

    def _check(self, selection, reference, target=0):
        specific, shared, weights, _, kl_sp, kl_sh = reference
        got_sp = to_numpy(selection["specific"])[:, target]
        got_sh = to_numpy(selection["shared"])[:, target]
        assert [set(row) for row in got_sp] == specific
        assert [set(row) for row in got_sh] == shared
        np.testing.assert_allclose(
            to_numpy(selection["weights"])[:, target], weights, atol=1e-5
        )
        return (
            np.sort(kl_sp, -1)[:, :2].mean() + np.sort(kl_sh, -1)[:, :2].mean()
        )

    def test_kernel_is_shared(self):
        layer, _, _ = self._layer()
        assert tuple(layer.gate_kernel.shape) == (5 + 3, 6)
        assert layer.get_config()["gate_kind"] == "shared"

    def test_selection_output_and_aux_loss_match_definition(self):
        layer, x, ids = self._layer(aux_loss_weight=0.5)
        reference = _reference(layer, x, ids)
        aux = self._check(layer.select_experts([x, ids]), reference)
        # The selection varies with the gate (not with x, without noise).
        assert len({frozenset(s) for s in reference[0]}) > 1
        np.testing.assert_allclose(
            to_numpy(layer([x, ids])), reference[3], atol=1e-5
        )
        (loss,) = layer.losses
        np.testing.assert_allclose(to_numpy(loss), 0.5 * aux, rtol=1e-4)

    def test_noise_on_own_gate_matches_definition(self):
        layer, x, ids = self._layer()
        # A dominant gate and expert: the leave-one-out sums must stay exact.
        bias = to_numpy(layer.gate_bias).reshape(5, 6)
        bias[2, 1] += 40.0
        bias[4, 3] -= 40.0
        layer.gate_bias.assign(bias.reshape(-1))
        noise = self._fix_noise(layer, (40, 1, 6))
        selection = layer.select_experts([x, ids], training=True)
        reference = _reference(layer, x, ids, noise=noise[:, 0])
        aux = self._check(selection, reference)
        np.testing.assert_allclose(
            to_numpy(selection["aux_loss"]), aux, rtol=1e-4
        )
        # Noise makes the selection vary within a gate.
        assert len({frozenset(s) for s in reference[0]}) > 5

    def test_per_gate_outputs_match_definition(self):
        layer, x, _ = self._layer(gates=3, per_gate_outputs=True)
        context = None
        noise = self._fix_noise(layer, (40, 3, 6))
        selection = layer.select_experts(x, training=True)
        aux = 0.0
        for task in range(3):
            targets = np.full(40, task)
            reference = _reference(
                layer, x, targets, context, noise=noise[:, task]
            )
            aux += self._check(selection, reference, target=task)
        np.testing.assert_allclose(
            to_numpy(selection["aux_loss"]), aux / 3, rtol=1e-4
        )
        outputs = layer(x)
        for task, output in enumerate(outputs):
            targets = np.full(40, task)
            *_, expected, _, _ = _reference(layer, x, targets)
            np.testing.assert_allclose(to_numpy(output), expected, atol=1e-5)

    def test_leave_one_out_logsumexp(self):
        layer, _, _ = self._layer()
        table = self.rng.normal(size=(5, 6)) * 3
        table[3, 0] = 80.0
        table[1, 2] = table[4, 2] = 7.0  # a tie for the largest
        got = to_numpy(layer._leave_one_out_logsumexp(table.astype("float32")))
        for j in range(5):
            rest = np.delete(table, j, axis=0)
            top = rest.max(0)
            expected = top + np.log(np.exp(rest - top).sum(0))
            np.testing.assert_allclose(got[j], expected, rtol=1e-5)

    def test_one_gate_with_noise_is_finite(self):
        layer, x, ids = self._layer(gates=1)
        out = to_numpy(layer([x, ids], training=True))
        assert np.isfinite(out).all()

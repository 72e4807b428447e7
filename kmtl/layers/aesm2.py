"""AESM2's expert selection layer: top-K of -KL to specific/shared targets."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from kmtl import validation
from kmtl.layers.expert_mixture import ExpertMixture
from kmtl.layers.experts import stacked_initializer
from kmtl.layers.keras_objects import clone_initializer
from kmtl.layers.keras_objects import constructor_config
from kmtl.layers.scenario_index import check_scenario_ids

# The logit of an expert left out of the selection (`-inf` in the paper):
# exp() of it underflows to exactly 0 in float32.
_MASKED_LOGIT = -1e9

GATE_KINDS = ("per_gate", "shared")


@keras.saving.register_keras_serializable(package="kmtl")
class ExpertSelectionLayer(ExpertMixture):
    """One AESM2 layer: `num_gates` gates select and mix `num_experts` experts.

    The layer holds one pool of experts `E_1..E_n` (one batched `Experts`
    layer) and `m = num_gates` linear gates; gate `j` is a scenario of a
    hierarchy level (multi-scenario layer) or a task (multi-task layer).
    For an example routed to gate `j` (its target), with gate input
    `z = [x, c, e_j]` (the input, an optional context such as a scenario
    embedding, and the layer's own `[m, d_e]` embedding of gate `j`), every
    gate `j'` gives the logits of all experts, with Gaussian noise in
    training only:

    `g_{j'} = S_{j'} z + b_{j'} + eta_{j'}`, `eta ~ N(0, noise_stddev^2)`

    `G~[k, :] = softmax_{j'}(g_{j'}[k])` is expert `k`'s distribution over
    the gates. The paper's selection rule (Zou et al. 2022, section 3,
    "expert selection") scores every expert against two targets over the
    gates, the one-hot `p_j` of the example's gate and the uniform
    `q = [1/m, ..., 1/m]`:

    `h^p_k = -KL(p_j || G~[k, :]) = log G~[k, j]`,
    `E_sp = TopK_k(h^p_k, top_k_specific)` (the most `j`-specific experts)

    `h^q_k = -KL(q || G~[k, :]) = log m + mean_{j'} log G~[k, j']`,
    `E_sh = TopK_k(h^q_k, top_k_shared)` (the most shared experts)

    and mixes the selected experts with gate `j`'s own logits, the others
    masked to `-inf` (so the weights of `E_sp ∪ E_sh` are renormalised to
    sum to 1):

    `y = sum_k softmax_k(g^_j)[k] E_k(x)`, `g^_j[k] = g_j[k]` if
    `k in E_sp ∪ E_sh`, else `-inf`.

    The auxiliary loss pushes the selected experts towards their targets:

    `L_aux = aux_loss_weight * (mean_{b, k in E_sp} KL(p_j || G~[k, :])
    + mean_{b, k in E_sh} KL(q || G~[k, :]))`,

    added with `add_loss` (it appears in `model.losses`). The selection
    itself (top-K indices) has no gradient; the mixture weights and the
    auxiliary loss train the gates.

    Cost: the scores need every gate's logits for each example, `O(d m n)`
    per example; at a level with many values (`m` in the hundreds) the gate
    matmul dominates the layer.

    `gate_kind="shared"` (not in the paper) restricts the gates to one
    family whose scores have a closed form, `O(d n)` per example plus
    `O(m n)` per batch: the input part of the gate is shared and each gate
    only adds a bias that does not depend on the input,

    `g_{j'} = W z + t_{j'}`, `t_{j'} = b_{j'} + U e_{j'}` (the `[m, n]`
    table `T`; `z = [x, c]`, and `e_{j'}` is gate `j'`'s own embedding).

    The shared part `W z` is the same for every `j'`, so it cancels in
    `G~[k, :] = softmax_{j'}(g_{j'}[k]) = softmax_{j'}(T[j', k])`, and with
    `LSE_k = logsumexp_{j'} T[j', k]`, computed once per batch:

    `h^p_k = T[j, k] - LSE_k`,
    `h^q_k = log m + mean_{j'} T[j', k] - LSE_k`.

    These are the definition's scores for this family, exactly; without
    noise they depend on the gate `j` only, so the selection is one set of
    experts per gate, while the mixture weights `softmax_k(g^_j)` still
    depend on the input. The auxiliary loss uses the same scores. Noise: in
    this mode `eta` is drawn for the example's own gate `j` only (`[B, n]`,
    not `[B, m, n]`), so that `g_j = W z + t_j + eta` and the other gates
    stay noiseless; then `LSE_k = logaddexp(R[j, k], T[j, k] + eta_k)`
    with `R[j, k] = logsumexp_{j' != j} T[j', k]` (an `[m, n]` table per
    batch), and `mean_{j'} g_{j'}[k]` gains `eta_k / m`: still exact, for
    that noise.

    It is an `ExpertMixture` (experts and their arguments shared with the
    switchers). With `per_gate_outputs=True` it acts as a multi-task
    switcher, but it is not registered as one: its selection needs
    per-gate embeddings and an auxiliary loss, and with
    `per_gate_outputs=False` it returns one tensor routed by an id.

    With `per_gate_outputs=False` (a multi-scenario layer) each example is
    routed to the gate given by its id and the layer returns one tensor.
    With `per_gate_outputs=True` (the multi-task layer) every example is
    routed to every gate (task), and the layer returns one tensor per gate;
    the experts are computed once.

    Args:
        num_gates: int. The number of gates `m` (values of the level, or
            tasks).
        num_experts: int. The number of experts `n`. Defaults to `8`.
        top_k_specific: int. Experts selected per gate as specific (`0`
            for none). At most `num_experts`. Defaults to `2`.
        top_k_shared: int. Experts selected per gate as shared (`0` for
            none). At most `num_experts`. Defaults to `2`.
        gate_embedding_dim: int. The width `d_e` of the gate embeddings in
            the gate input. Defaults to `8`.
        per_gate_outputs: bool. Route every example to every gate (a
            multi-task layer) instead of to the gate of its id. Defaults to
            `False`.
        noise_stddev: float. Standard deviation of the Gaussian noise added
            to the gate logits in training (`0` disables it). Defaults to
            `0.0`.
        aux_loss_weight: float. Weight of the auxiliary KL loss (`0`
            disables it). Defaults to `0.01`.
        seed: int or None. Seed of the gate noise. Defaults to `None`.
        gate_kind: str. `"per_gate"`: every gate has its own kernel on the
            gate input (the paper's gates, `O(d m n)` per example).
            `"shared"`: one kernel shared by all gates plus a bias per gate
            (see above; `O(d n)` per example). Defaults to `"per_gate"`.
        **kwargs: The `ExpertMixture` arguments (`expert_units` (256,
            128), `activation`, `kernel_initializer`, `kernel_regularizer`)
            and base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: with `per_gate_outputs=False`, a list `[x, ids]` or
            `[x, ids, context]`: `x` float `[B, d]`, `ids` int `[B]` or
            `[B, 1]` gate ids in `[0, num_gates)` (checked on the
            TensorFlow backend), `context` float `[B, c]` added to the gate
            input. With `per_gate_outputs=True`, `x` or `[x, context]`.
        training: bool. Adds the gate noise when true.

    Returns:
        A tensor `[B, expert_units[-1]]` (`per_gate_outputs=False`), or a
        list of `num_gates` such tensors.

    Example:

    ```python
    layer = kmtl.layers.ExpertSelectionLayer(
        num_gates=3, num_experts=4, top_k_specific=1, top_k_shared=1,
        expert_units=(16,),
    )
    y = layer([np.random.rand(8, 10), np.arange(8) % 3])  # [8, 16]

    # AESM2: a multi-scenario layer, then a multi-task layer (2 tasks).
    x = keras.Input(shape=(10,))
    scenario = keras.Input(shape=(), dtype="int32")
    h = kmtl.layers.ExpertSelectionLayer(num_gates=3, num_experts=4)(
        [x, scenario]
    )
    ctr, cvr = kmtl.layers.ExpertSelectionLayer(
        num_gates=2, num_experts=4, per_gate_outputs=True
    )(h)
    model = keras.Model([x, scenario], [ctr, cvr])
    ```

    Reference:
        - [Zou et al., 2022](https://arxiv.org/abs/2205.14321) (Automatic
          Expert Selection for Multi-Scenario and Multi-Task Search
          (AESM2), SIGIR 2022).
    """

    def __init__(
        self,
        num_gates: int,
        num_experts: int = 8,
        top_k_specific: int = 2,
        top_k_shared: int = 2,
        gate_embedding_dim: int = 8,
        per_gate_outputs: bool = False,
        noise_stddev: float = 0.0,
        aux_loss_weight: float = 0.01,
        seed: int | None = None,
        gate_kind: str = "per_gate",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_gates = validation.positive_int(num_gates, "num_gates")
        self.num_experts = validation.positive_int(num_experts, "num_experts")
        self.top_k_specific = validation.non_negative_int(
            top_k_specific, "top_k_specific"
        )
        self.top_k_shared = validation.non_negative_int(
            top_k_shared, "top_k_shared"
        )
        for name, value in (
            ("top_k_specific", top_k_specific),
            ("top_k_shared", top_k_shared),
        ):
            if value > num_experts:
                raise ValueError(
                    f"`{name}` must be at most `num_experts` "
                    f"({num_experts}). Received: {name}={value}"
                )
        if top_k_specific + top_k_shared < 1:
            raise ValueError(
                "At least one expert must be selected: `top_k_specific + "
                "top_k_shared` must be >= 1. Received: top_k_specific="
                f"{top_k_specific}, top_k_shared={top_k_shared}"
            )
        self.gate_embedding_dim = validation.positive_int(
            gate_embedding_dim, "gate_embedding_dim"
        )
        self.per_gate_outputs = validation.boolean(
            per_gate_outputs, "per_gate_outputs"
        )
        self.noise_stddev = validation.non_negative_float(
            noise_stddev, "noise_stddev"
        )
        self.aux_loss_weight = validation.non_negative_float(
            aux_loss_weight, "aux_loss_weight"
        )
        if seed is not None and not validation.is_integer(seed):
            raise ValueError(
                f"`seed` must be an int or None. Received: seed={seed!r}"
            )
        self.seed = seed
        self.gate_kind = validation.one_of(
            gate_kind, "gate_kind", choices=GATE_KINDS
        )
        self.seed_generator = keras.random.SeedGenerator(seed)

    # --- Layer ---

    def _split_shapes(self, input_shape: Any) -> tuple[Any, Any]:
        """Returns the shapes of `x` and of the context (or None)."""
        nested = isinstance(input_shape, (list, tuple)) and all(
            isinstance(s, (list, tuple)) for s in input_shape
        )
        shapes = [tuple(s) for s in input_shape] if nested else None
        if self.per_gate_outputs and shapes is None:
            shapes = [tuple(input_shape)]
        sizes = (1, 2) if self.per_gate_outputs else (2, 3)
        context = None
        if shapes is not None and len(shapes) == sizes[1]:
            context = shapes[-1]
        if (
            shapes is None
            or len(shapes) not in sizes
            or len(shapes[0]) != 2
            or (context is not None and len(context) != 2)
        ):
            expected = (
                "`x` or `[x, context]`"
                if self.per_gate_outputs
                else "`[x, ids]` or `[x, ids, context]`"
            )
            raise ValueError(
                f"`ExpertSelectionLayer` with per_gate_outputs="
                f"{self.per_gate_outputs} takes {expected}, with `x` and "
                f"`context` of shape [B, d]. Received: input_shape="
                f"{input_shape}"
            )
        return shapes[0], context

    def build(self, input_shape: Any) -> None:
        x_shape, context_shape = self._split_shapes(input_shape)
        self.experts = self.build_experts(x_shape, self.num_experts)
        gates, experts = self.num_gates, self.num_experts
        self._input_dim = int(x_shape[-1]) + (
            0 if context_shape is None else int(context_shape[-1])
        )
        dim = self._input_dim + self.gate_embedding_dim
        self.gate_embeddings = self.add_weight(
            name="gate_embeddings",
            shape=(gates, self.gate_embedding_dim),
            initializer=keras.initializers.RandomNormal(stddev=0.05),
        )
        if self.gate_kind == "shared":
            # One [d, n] kernel for all gates: `W` (rows up to
            # `_input_dim`), then `U` on the gate embeddings.
            kernel_shape = (dim, experts)
            initializer = clone_initializer(self.kernel_initializer)
        else:
            # All gates' kernels as one [d, m * n] matmul; rows past
            # `_input_dim` read the gate embedding.
            kernel_shape = (dim, gates * experts)
            initializer = stacked_initializer(
                self.kernel_initializer, (dim, experts), gates, "concat"
            )
        self.gate_kernel = self.add_weight(
            name="gate_kernel",
            shape=kernel_shape,
            initializer=initializer,
            regularizer=self.kernel_regularizer,
        )
        self.gate_bias = self.add_weight(
            name="gate_bias", shape=(gates * experts,), initializer="zeros"
        )
        self.built = True

    def _split_inputs(self, inputs: Any) -> tuple[Any, Any, Any]:
        """Returns `x`, the gate ids (None: every gate) and the gate input."""
        items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        x = items[0]
        ids = None
        if not self.per_gate_outputs:
            ids = check_scenario_ids(
                ops.reshape(items[1], (-1,)),
                self.num_gates,
                f"(input 1 of layer {self.name})",
            )
        has_context = len(items) == (2 if self.per_gate_outputs else 3)
        gate_input = (
            ops.concatenate([x, items[-1]], axis=-1) if has_context else x
        )
        return x, ids, gate_input

    def _gate_logits(self, ids: Any, gate_input: Any, training: Any) -> Any:
        """Every gate's logits for each (example, target): `[B, T, m, n]`."""
        kernel = self.gate_kernel
        input_kernel = kernel[: self._input_dim]
        embedding_kernel = kernel[self._input_dim :]
        # [B, m * n], shared by every target of an example.
        logits = ops.add(ops.matmul(gate_input, input_kernel), self.gate_bias)
        # The gate embedding term of each target: [T, m * n].
        by_target = ops.matmul(self.gate_embeddings, embedding_kernel)
        if ids is None:
            logits = ops.add(ops.expand_dims(logits, 1), by_target)
        else:
            logits = ops.add(logits, ops.take(by_target, ids, axis=0))
            logits = ops.expand_dims(logits, 1)
        targets = self.num_gates if ids is None else 1
        logits = ops.reshape(
            logits, (-1, targets, self.num_gates, self.num_experts)
        )
        if training and self.noise_stddev > 0:
            logits = ops.add(logits, self._noise(ops.shape(logits)))
        return logits

    def _noise(self, shape: Any) -> Any:
        """Gaussian gate noise of the given shape (training only)."""
        return keras.random.normal(
            shape,
            stddev=self.noise_stddev,
            dtype=self.compute_dtype,
            seed=self.seed_generator,
        )

    def _leave_one_out_logsumexp(self, table: Any) -> Any:
        """`R[j, k] = logsumexp_{j' != j} table[j', k]`, `[m, n]`, in O(m n).

        Every row but the largest of a column is shifted by that largest
        value, whose term (1) keeps the sum >= 1; the largest row is
        shifted by the second largest and sums the other rows directly.
        """
        if self.num_gates == 1:
            return ops.full_like(table, _MASKED_LOGIT)
        top = ops.max(table, axis=0)  # [n]
        is_top = ops.transpose(
            ops.one_hot(ops.argmax(table, axis=0), self.num_gates)
        )
        is_top = ops.greater(is_top, 0.5)  # [m, n], one row per column
        scaled = ops.exp(ops.subtract(table, top))
        total = ops.sum(scaled, axis=0)
        # The clamp only bites on the largest row (its value is unused) and
        # on rounding; it keeps the log and its gradient finite.
        others = ops.add(
            top, ops.log(ops.maximum(ops.subtract(total, scaled), 1.0))
        )
        masked = ops.where(is_top, _MASKED_LOGIT, table)
        second = ops.max(masked, axis=0)
        rest = ops.sum(
            ops.where(is_top, 0.0, ops.exp(ops.subtract(masked, second))),
            axis=0,
        )
        rest = ops.add(second, ops.log(ops.maximum(rest, 1.0)))
        return ops.where(is_top, rest, others)

    def _shared_scores(
        self, ids: Any, gate_input: Any, training: Any
    ) -> tuple[Any, Any, Any]:
        """The closed form of `gate_kind="shared"` (see the docstring).

        Returns the target gate's logits, `h^p` and `h^q`, each `[B, T, n]`.
        """
        gates, experts = self.num_gates, self.num_experts
        kernel = self.gate_kernel
        shared = ops.matmul(gate_input, kernel[: self._input_dim])  # [B, n]
        shared = ops.expand_dims(shared, 1)  # [B, 1, n]
        # T = b + E U: [m, n], once per batch.
        table = ops.add(
            ops.reshape(self.gate_bias, (gates, experts)),
            ops.matmul(self.gate_embeddings, kernel[self._input_dim :]),
        )
        if ids is None:

            def pick(t: Any) -> Any:
                return ops.expand_dims(t, 0)  # [1, m, n]: every gate

        else:

            def pick(t: Any) -> Any:
                return ops.expand_dims(ops.take(t, ids, axis=0), 1)

        own = pick(table)  # t_j of each target: [B or 1, T, n]
        mean = ops.mean(table, axis=0)  # [n]
        if training and self.noise_stddev > 0:
            targets = gates if ids is None else 1
            noise = self._noise((ops.shape(gate_input)[0], targets, experts))
            own = ops.add(own, noise)
            logsumexp = ops.logaddexp(
                pick(self._leave_one_out_logsumexp(table)), own
            )
            mean = ops.add(mean, ops.divide(noise, float(gates)))
        else:
            logsumexp = ops.logsumexp(table, axis=0)  # [n]
        logits = ops.add(shared, own)  # [B, T, n]
        zeros = ops.zeros_like(logits)
        specific_score = ops.add(ops.subtract(own, logsumexp), zeros)
        shared_score = ops.add(
            ops.subtract(mean, logsumexp), float(np.log(gates))
        )
        return logits, specific_score, ops.add(shared_score, zeros)

    def _scores(
        self, ids: Any, gate_input: Any, training: Any
    ) -> tuple[Any, Any, Any]:
        """The target gate's logits, `h^p` and `h^q`, each `[B, T, n]`."""
        if self.gate_kind == "shared":
            return self._shared_scores(ids, gate_input, training)
        logits = self._gate_logits(ids, gate_input, training)
        targets = ops.expand_dims(self._targets(ids), -1)
        log_p = ops.log_softmax(logits, axis=-2)  # log G~[k, j'], over j'.
        # -KL(p_j || G~[k, :]) and -KL(q || G~[k, :]), each [B, T, n].
        specific_score = ops.sum(targets * log_p, -2)
        shared_score = ops.add(
            ops.mean(log_p, axis=-2), float(np.log(self.num_gates))
        )
        own = ops.sum(targets * logits, axis=-2)
        return own, specific_score, shared_score

    def _targets(self, ids: Any) -> Any:
        """One-hot of each (example, target)'s gate: `[B or 1, T, m]`."""
        if ids is None:
            return ops.expand_dims(ops.eye(self.num_gates), 0)
        return ops.expand_dims(ops.one_hot(ids, self.num_gates), 1)

    def _select(
        self, ids: Any, gate_input: Any, training: Any
    ) -> dict[str, Any]:
        """The expert selection of every (example, target).

        Returns a dict: `specific`, `shared` (top-K indices `[B, T, K]`,
        absent when K = 0), `weights` (`[B, T, n]`, zero outside the
        selection) and `aux_loss` (scalar).
        """
        own, specific_score, shared_score = self._scores(
            ids, gate_input, training
        )
        out = {}
        selected = None
        aux_loss = 0.0
        for name, score, k in (
            ("specific", specific_score, self.top_k_specific),
            ("shared", shared_score, self.top_k_shared),
        ):
            if k == 0:
                continue
            _, indices = ops.top_k(score, k)
            out[name] = indices
            mask = ops.sum(ops.one_hot(indices, self.num_experts), axis=-2)
            selected = mask if selected is None else selected + mask
            aux_loss = aux_loss - ops.mean(ops.sum(mask * score, -1)) / k
        own = ops.where(selected > 0, own, ops.full_like(own, _MASKED_LOGIT))
        out["weights"] = ops.softmax(own, axis=-1)
        out["aux_loss"] = aux_loss
        return out

    def select_experts(
        self, inputs: Any, training: bool = False
    ) -> dict[str, Any]:
        """The selected experts and their mixture weights.

        Args:
            inputs: as in `call`.
            training: bool. Adds the gate noise when true.

        Returns:
            dict: `"specific"`, `"shared"`: int `[B, T, K]` top-K expert
            indices (absent when that K is 0), `"weights"`: `[B, T, n]`
            mixture weights, zero outside the selection, and `"aux_loss"`:
            the unweighted auxiliary loss. `T` is 1, or `num_gates` with
            `per_gate_outputs=True`.
        """
        if not self.built:
            self.build(keras.tree.map_structure(lambda t: t.shape, inputs))
        _, ids, gate_input = self._split_inputs(inputs)
        return self._select(ids, gate_input, training)

    def named_gate_weights(self, inputs: Any) -> dict[str, Any]:
        """The gate inspection protocol (`kmtl.inspection`).

        Args:
            inputs: as in `call`.

        Returns:
            dict gate name -> `[B, num_experts]` mixture weights, zero
            outside the top-K selection (so the share of rows where a
            weight is positive is the expert's selection rate):
            `"task_<j>"` per gate with `per_gate_outputs=True`; else one
            `"routed"` entry, each row under the gate of its id.
        """
        weights = self.select_experts(inputs)["weights"]  # [B, T, n]
        if not self.per_gate_outputs:
            return {"routed": weights[:, 0]}
        return {f"task_{j}": weights[:, j] for j in range(self.num_gates)}

    def call(self, inputs: Any, training: Any = None) -> Any:
        x, ids, gate_input = self._split_inputs(inputs)
        selection = self._select(ids, gate_input, training)
        if self.aux_loss_weight > 0:
            self.add_loss(
                ops.multiply(selection["aux_loss"], self.aux_loss_weight)
            )
        experts = self.experts(x)  # [B, n, h]
        mixed = ops.matmul(selection["weights"], experts)  # [B, T, H]
        if self.per_gate_outputs:
            return list(ops.unstack(mixed, num=self.num_gates, axis=1))
        return mixed[:, 0, :]

    def compute_output_shape(self, input_shape: Any) -> Any:
        x_shape, _ = self._split_shapes(input_shape)
        shape = (x_shape[0], self.expert_units[-1])
        return [shape] * self.num_gates if self.per_gate_outputs else shape

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            **constructor_config(self, ExpertSelectionLayer),
        }


__all__ = ["ExpertSelectionLayer"]

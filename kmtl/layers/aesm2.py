"""AESM2's expert selection layer: top-K of -KL to specific/shared targets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from kmtl.features.encoder import check_scenario_ids
from kmtl.layers.experts import Experts
from kmtl.layers.experts import _stacked_initializer
from kmtl.layers.mlp import _as_units
from kmtl.layers.mlp import _check_bool
from kmtl.layers.mlp import _check_non_negative_int
from kmtl.layers.mlp import _check_positive_int
from kmtl.layers.mlp import _check_units
from kmtl.layers.mlp import _clone_initializer
from kmtl.layers.mlp import _is_int

# The logit of an expert left out of the selection (`-inf` in the paper):
# exp() of it underflows to exactly 0 in float32.
_MASKED_LOGIT = -1e9


def _check_non_negative_float(name: str, value: Any) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.floating))
        or not value >= 0.0
    ):
        raise ValueError(
            f"`{name}` must be a float >= 0. Received: {name}={value!r}"
        )


@keras.saving.register_keras_serializable(package="kmtl")
class ExpertSelectionLayer(keras.layers.Layer):
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
        expert_units: sequence of int. The widths of each expert MLP.
            Defaults to `(256, 128)`.
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
        activation: str or callable. Activation of every expert layer.
            Defaults to `"relu"`.
        kernel_initializer: str or `keras.initializers.Initializer`.
            Initializer of the expert and gate kernels (drawn per expert and
            per gate). Defaults to `"glorot_uniform"`.
        kernel_regularizer: str, `keras.regularizers.Regularizer` or None.
            Regularizer of the expert and gate kernels. Defaults to `None`.
        seed: int or None. Seed of the gate noise. Defaults to `None`.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

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
        expert_units: Sequence[int] = (256, 128),
        gate_embedding_dim: int = 8,
        per_gate_outputs: bool = False,
        noise_stddev: float = 0.0,
        aux_loss_weight: float = 0.01,
        activation: str | Any = "relu",
        kernel_initializer: str | keras.initializers.Initializer = (
            "glorot_uniform"
        ),
        kernel_regularizer: str | keras.regularizers.Regularizer | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_gates = num_gates
        self.num_experts = num_experts
        self.top_k_specific = top_k_specific
        self.top_k_shared = top_k_shared
        self.expert_units = _as_units(expert_units)
        self.gate_embedding_dim = gate_embedding_dim
        self.per_gate_outputs = per_gate_outputs
        self.noise_stddev = noise_stddev
        self.aux_loss_weight = aux_loss_weight
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.seed = seed

        _check_positive_int("num_gates", num_gates)
        _check_positive_int("num_experts", num_experts)
        for name, value in (
            ("top_k_specific", top_k_specific),
            ("top_k_shared", top_k_shared),
        ):
            _check_non_negative_int(name, value)
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
        _check_units("expert_units", expert_units)
        _check_positive_int("gate_embedding_dim", gate_embedding_dim)
        _check_bool("per_gate_outputs", per_gate_outputs)
        _check_non_negative_float("noise_stddev", noise_stddev)
        _check_non_negative_float("aux_loss_weight", aux_loss_weight)
        if seed is not None and not _is_int(seed):
            raise ValueError(
                f"`seed` must be an int or None. Received: seed={seed!r}"
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
        self.experts = Experts(
            num_experts=self.num_experts,
            units=self.expert_units,
            activation=self.activation,
            kernel_initializer=_clone_initializer(self.kernel_initializer),
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
            name="experts",
        )
        self.experts.build(x_shape)
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
        # All gates' kernels as one [d, m * n] matmul; rows past
        # `_input_dim` read the gate embedding.
        self.gate_kernel = self.add_weight(
            name="gate_kernel",
            shape=(dim, gates * experts),
            initializer=_stacked_initializer(
                self.kernel_initializer, (dim, experts), gates, "concat"
            ),
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
            logits = ops.add(
                logits,
                keras.random.normal(
                    ops.shape(logits),
                    stddev=self.noise_stddev,
                    dtype=logits.dtype,
                    seed=self.seed_generator,
                ),
            )
        return logits

    def _targets(self, ids: Any) -> Any:
        """One-hot of each (example, target)'s gate: `[B or 1, T, m]`."""
        if ids is None:
            return ops.expand_dims(ops.eye(self.num_gates), 0)
        return ops.expand_dims(ops.one_hot(ids, self.num_gates), 1)

    def _select(self, logits: Any, targets: Any) -> dict[str, Any]:
        """The expert selection of every (example, target).

        Returns a dict: `specific`, `shared` (top-K indices `[B, T, K]`,
        absent when K = 0), `weights` (`[B, T, n]`, zero outside the
        selection) and `aux_loss` (scalar).
        """
        log_p = ops.log_softmax(logits, axis=-2)  # log G~[k, j'], over j'.
        # -KL(p_j || G~[k, :]) and -KL(q || G~[k, :]), each [B, T, n].
        specific_score = ops.sum(ops.expand_dims(targets, -1) * log_p, -2)
        shared_score = ops.add(
            ops.mean(log_p, axis=-2), float(np.log(self.num_gates))
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
        own = ops.sum(ops.expand_dims(targets, -1) * logits, axis=-2)
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
        logits = self._gate_logits(ids, gate_input, training)
        return self._select(logits, self._targets(ids))

    def call(self, inputs: Any, training: Any = None) -> Any:
        x, ids, gate_input = self._split_inputs(inputs)
        logits = self._gate_logits(ids, gate_input, training)
        selection = self._select(logits, self._targets(ids))
        if self.aux_loss_weight > 0:
            self.add_loss(
                ops.multiply(selection["aux_loss"], self.aux_loss_weight)
            )
        experts = self.experts(x)  # [B, n, h]
        mixed = ops.einsum("btn,bnh->bth", selection["weights"], experts)
        if self.per_gate_outputs:
            return list(ops.unstack(mixed, num=self.num_gates, axis=1))
        return mixed[:, 0, :]

    def compute_output_shape(self, input_shape: Any) -> Any:
        x_shape, _ = self._split_shapes(input_shape)
        shape = (x_shape[0], self.expert_units[-1])
        return [shape] * self.num_gates if self.per_gate_outputs else shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "num_gates": self.num_gates,
                "num_experts": self.num_experts,
                "top_k_specific": self.top_k_specific,
                "top_k_shared": self.top_k_shared,
                "expert_units": list(self.expert_units),
                "gate_embedding_dim": self.gate_embedding_dim,
                "per_gate_outputs": self.per_gate_outputs,
                "noise_stddev": self.noise_stddev,
                "aux_loss_weight": self.aux_loss_weight,
                "activation": keras.activations.serialize(self.activation),
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "kernel_regularizer": keras.regularizers.serialize(
                    self.kernel_regularizer
                ),
                "seed": self.seed,
            }
        )
        return config


__all__ = ["ExpertSelectionLayer"]

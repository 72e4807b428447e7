"""HiNet's scenario extraction layer: shared, specific and attentive parts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from kmtl import validation
from kmtl.layers.expert_mixture import ExpertMixture
from kmtl.layers.experts import stacked_initializer
from kmtl.layers.keras_objects import clone_initializer
from kmtl.layers.keras_objects import constructor_config
from kmtl.layers.scenario_index import check_scenario_ids

SPECIFIC_KINDS = ("full", "factored")


@keras.saving.register_keras_serializable(package="kmtl")
class ScenarioExtractionLayer(ExpertMixture):
    """HiNet's scenario extraction layer for an example of scenario `i`.

    Three parts, each a mixture of expert MLPs on the input `x`:

    - scenario-shared: `v_sh = sum_k softmax(x W_sh)[k] E^sh_k(x)`;
    - scenario-specific, one expert group per scenario (the authors'
      "subexpert integration"): `v_j = sum_k softmax(x W_j)[k] E^j_k(x)`,
      and the example's own `v_sp = v_i`;
    - scenario-aware attention (SAN) over the other scenarios' specific
      outputs, weighted by a scenario gate on the scenario embedding
      `e_i` (a row of a `[S, d_e]` weight):
      `a = softmax(e_i A + c)`, `v_san = sum_{j in N(i)} a_j v_j`.

    The output is `[v_sh, v_sp, v_san]` concatenated, as in the paper and
    the authors' code; as there, the scenario gate's softmax runs over all
    `S` scenarios and the own scenario's weight is then dropped (with one
    scenario `v_san` is 0).

    Two forms of the specific part (`specific_kind`):

    - `"full"` (the paper's): every scenario has its own experts, and
      `N(i)` is every other scenario, so the SAN weights sum to `1 - a_i`.
      The SAN needs every scenario's specific output on every example, so
      all `S * num_specific_experts` specific experts are computed (one
      batched `Experts` layer with the shared ones): the cost per example
      grows linearly with `S`.
    - `"factored"` (not in the paper), whose cost per example does not
      depend on `S`. Scenario `j`'s experts are one set of shared expert
      MLPs whose hidden units it rescales and shifts (LHUC-style; the
      kernel `W_{l,k} * (1 t_{l,j,k}^T)`, STAR's `W_p * W` with a rank-1
      `W_p`): layer `l` of expert `k` is
      `h_{l+1} = act((h_l @ W_{l,k}) * t_{l,j,k} + b_{l,k} + b_{l,j,k})`,
      the scales `t` starting at 1 and the scenario biases at 0, and its
      gate is `softmax((x W_g) * r_j + c_j)` (one shared kernel, a scale
      and a bias per scenario). `N(i)` is the `attention_top_k` other
      scenarios of largest `a_j` (picked per example; the weights are the
      softmax's own, not renormalised, so with `S - 1 <=
      attention_top_k` the SAN is the paper's over every other scenario).
      An example evaluates the specific experts for `T = 1 +
      attention_top_k` scenarios only, with gathered `[S, ...]` rows: the
      first layer's `x W_{1,k}` once, the later layers `T` times, whatever
      `S` is. Only the scenario gate's `[B, S]` logits and their top-k
      grow with `S` (`O(S d_e)` per example, small beside the experts).

    It is an `ExpertMixture` (experts, gates and their arguments shared
    with the switchers) but not a `Switcher`: it returns one
    representation per example, routed by the example's scenario id, not
    one per task branch; HiNet's task extraction after it is a switcher.

    The gates are linear softmax gates (the authors' code puts a ReLU
    before the softmax), and the scenario gate is linear in the scenario
    embedding (the authors use an MLP on it; with an id as input, a
    learned `[S, d_e]` embedding times a linear map is as expressive up to
    the rank `d_e`).

    Args:
        num_scenarios: int. The number of scenarios `S`.
        num_shared_experts: int. Scenario-shared experts. Defaults to `4`.
        num_specific_experts: int. Experts of each scenario. Defaults to
            `2`.
        scenario_embedding_dim: int. The width `d_e` of the scenario
            embedding read by the scenario gate. Defaults to `8`.
        specific_kind: str. `"full"` or `"factored"` (see above). Defaults
            to `"full"`.
        attention_top_k: int. With `"factored"`, the other scenarios the
            SAN attends to, per example (`0`: `v_san = 0`). Unused by
            `"full"`. Defaults to `3`.
        **kwargs: The `ExpertMixture` arguments (`expert_units` (256,
            128), `activation`, `kernel_initializer`, `kernel_regularizer`)
            and base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: list `[x, scenario]`: `x` a float tensor `[B, d]`,
            `scenario` an int tensor `[B]` or `[B, 1]` of ids in `[0, S)`
            (checked on the TensorFlow backend).

    Returns:
        A tensor `[B, 3 * expert_units[-1]]`: `[v_sh, v_sp, v_san]`.

    Example:

    ```python
    layer = kmtl.layers.ScenarioExtractionLayer(
        num_scenarios=3, expert_units=(16,)
    )
    y = layer([np.random.rand(8, 10), np.arange(8) % 3])  # [8, 48]

    # HiNet over 1,000 scenarios, then task extraction with CGC.
    x = keras.Input(shape=(10,))
    scenario = keras.Input(shape=(), dtype="int32")
    h = kmtl.layers.ScenarioExtractionLayer(
        num_scenarios=1000, specific_kind="factored"
    )([x, scenario])
    ctr, cvr = kmtl.layers.CGCLayer(num_tasks=2, expert_units=(64,))(h)
    model = keras.Model([x, scenario], [ctr, cvr])
    ```

    Reference:
        - [Zhou et al., 2023](https://arxiv.org/abs/2303.06095) (HiNet:
          Novel Multi-Scenario & Multi-Task Learning with Hierarchical
          Information Extraction, ICDE 2023).
    """

    def __init__(
        self,
        num_scenarios: int,
        num_shared_experts: int = 4,
        num_specific_experts: int = 2,
        scenario_embedding_dim: int = 8,
        specific_kind: str = "full",
        attention_top_k: int = 3,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        counts = {
            "num_scenarios": num_scenarios,
            "num_shared_experts": num_shared_experts,
            "num_specific_experts": num_specific_experts,
            "scenario_embedding_dim": scenario_embedding_dim,
        }
        for name, value in counts.items():
            setattr(self, name, validation.positive_int(value, name))
        self.specific_kind = validation.one_of(
            specific_kind, "specific_kind", choices=SPECIFIC_KINDS
        )
        self.attention_top_k = validation.non_negative_int(
            attention_top_k, "attention_top_k"
        )

    @property
    def num_experts(self) -> int:
        """The experts computed per example: with `"full"`, every
        scenario's specific ones, then the shared; with `"factored"`, the
        shared ones (the specific ones are passes of the factored set)."""
        if self.specific_kind == "factored":
            return self.num_shared_experts
        return (
            self.num_scenarios * self.num_specific_experts
            + self.num_shared_experts
        )

    @property
    def num_attended(self) -> int:
        """The other scenarios the SAN reads per example."""
        if self.specific_kind == "full":
            return self.num_scenarios - 1
        return min(self.attention_top_k, self.num_scenarios - 1)

    # --- Layer ---

    def build(self, input_shape: Sequence[Any]) -> None:
        shapes = list(input_shape)
        if (
            len(shapes) != 2
            or not all(isinstance(s, (list, tuple)) for s in shapes)
            or len(shapes[0]) != 2
        ):
            raise ValueError(
                "`ScenarioExtractionLayer` takes `[x, scenario]` with `x` "
                "of shape [B, d] and `scenario` of shape [B] or [B, 1]. "
                f"Received: input_shape={input_shape}"
            )
        x_shape = tuple(shapes[0])
        self.experts = self.build_experts(x_shape, self.num_experts)
        if self.specific_kind == "full":
            self.specific_gate = self.build_gate(
                x_shape,
                self.num_scenarios,
                self.num_specific_experts,
                name="specific_gate",
            )
        else:
            self._build_factored(int(x_shape[-1]))
        self.shared_gate = self.build_gate(
            x_shape, 1, self.num_shared_experts, name="shared_gate"
        )
        self.scenario_embeddings = self.add_weight(
            name="scenario_embeddings",
            shape=(self.num_scenarios, self.scenario_embedding_dim),
            initializer=keras.initializers.RandomNormal(stddev=0.05),
        )
        self.attention_kernel = self.add_weight(
            name="attention_kernel",
            shape=(self.scenario_embedding_dim, self.num_scenarios),
            initializer=clone_initializer(self.kernel_initializer),
            regularizer=self.kernel_regularizer,
        )
        self.attention_bias = self.add_weight(
            name="attention_bias",
            shape=(self.num_scenarios,),
            initializer="zeros",
        )
        self.built = True

    def _build_factored(self, dim: int) -> None:
        """The shared specific experts and their per-scenario factors."""
        num, experts = self.num_scenarios, self.num_specific_experts

        def weight(name: str, shape: tuple, initializer: Any) -> Any:
            return self.add_weight(
                name=name, shape=shape, initializer=initializer
            )

        def kernel(name: str, shape: tuple, members: int) -> Any:
            return self.add_weight(
                name=name,
                shape=(members, *shape),
                initializer=stacked_initializer(
                    self.kernel_initializer, shape, members
                ),
                regularizer=self.kernel_regularizer,
            )

        self.specific_gate_kernel = self.add_weight(
            name="specific_gate_kernel",
            shape=(dim, experts),
            initializer=clone_initializer(self.kernel_initializer),
            regularizer=self.kernel_regularizer,
        )
        self.scenario_gate_scale = weight(
            "scenario_gate_scale", (num, experts), "ones"
        )
        self.scenario_gate_bias = weight(
            "scenario_gate_bias", (num, experts), "zeros"
        )
        self.specific_kernels, self.specific_biases = [], []
        self.scenario_scales, self.scenario_biases = [], []
        fan_in = dim
        for i, width in enumerate(self.expert_units):
            self.specific_kernels.append(
                kernel(f"specific_kernel_{i}", (fan_in, width), experts)
            )
            self.specific_biases.append(
                weight(f"specific_bias_{i}", (experts, width), "zeros")
            )
            # Expert-major ([K, S, h]): an expert gathers from its own
            # contiguous [S, h] table.
            self.scenario_scales.append(
                weight(f"scenario_scale_{i}", (experts, num, width), "ones")
            )
            self.scenario_biases.append(
                weight(f"scenario_bias_{i}", (experts, num, width), "zeros")
            )
            fan_in = width

    def _ids(self, scenario: Any) -> Any:
        return check_scenario_ids(
            ops.reshape(scenario, (-1,)),
            self.num_scenarios,
            f"(input 1 of layer {self.name})",
        )

    def _attention_logits(self, ids: Any) -> Any:
        """The scenario gate's logits `e_i A + c`, `[B, S]`."""
        embedding = ops.take(self.scenario_embeddings, ids, axis=0)
        return ops.add(
            ops.matmul(embedding, self.attention_kernel), self.attention_bias
        )

    def _attended(self, ids: Any) -> tuple[Any, Any]:
        """With `"factored"`: the attended scenarios `N(i)` of each example,
        int `[B, k]`, and their SAN weights `a_j`, `[B, k]`."""
        logits = self._attention_logits(ids)
        own = ops.one_hot(ids, self.num_scenarios) > 0.5
        masked = ops.where(own, ops.full_like(logits, -1e9), logits)
        _, others = ops.top_k(masked, self.num_attended)
        log_weights = ops.log_softmax(logits, axis=-1)
        return others, ops.exp(ops.take_along_axis(log_weights, others, 1))

    def _factored_gates(self, x: Any, scenarios: Any) -> Any:
        """`softmax((x W_g) * r_j + c_j)` of each example's scenarios
        `[B, T]`: `[B, T, K]`."""
        logits = ops.matmul(x, self.specific_gate_kernel)[:, None]
        scale = ops.take(self.scenario_gate_scale, scenarios, axis=0)
        bias = ops.take(self.scenario_gate_bias, scenarios, axis=0)
        return ops.softmax(ops.add(ops.multiply(logits, scale), bias), -1)

    def _factored_specific(self, x: Any, scenarios: Any) -> Any:
        """`v_j(x)` of the factored experts for the `T` scenarios of each
        example (`scenarios` int `[B, T]`): `[B, T, h]`."""
        gates = self._factored_gates(x, scenarios)  # [B, T, K]
        mixed = None
        # Expert by expert, on [B, T, h] tensors: 3-4x faster to train on
        # the TF CPU backend (B=2048, T=4) than one [B, T, K, h] tensor
        # gathered and stacked.
        for e in range(self.num_specific_experts):
            h = x[:, None]  # [B, 1, d]: the first layer's product is shared
            for kernel, bias, scale, shift in zip(
                self.specific_kernels,
                self.specific_biases,
                self.scenario_scales,
                self.scenario_biases,
                strict=True,
            ):
                rows = ops.reshape(h, (-1, h.shape[-1]))
                z = ops.reshape(
                    ops.matmul(rows, kernel[e]),
                    (-1, h.shape[1], kernel.shape[-1]),
                )
                z = ops.multiply(z, ops.take(scale[e], scenarios, axis=0))
                z = ops.add(z, bias[e])
                h = self.activation(
                    ops.add(z, ops.take(shift[e], scenarios, axis=0))
                )  # [B, T, h]
            term = ops.multiply(gates[:, :, e, None], h)
            mixed = term if mixed is None else ops.add(mixed, term)
        return mixed

    def _full_specific(self, x: Any) -> Any:
        """Every scenario's `v_j(x)` of the full experts, `[B, S, h]`, and
        the shared experts' outputs, `[B, K_sh, h]`."""
        num_specific = self.num_scenarios * self.num_specific_experts
        width = self.expert_units[-1]
        experts = self.experts(x)  # [B, S * K_sp + K_sh, h]
        specific = ops.reshape(
            experts[:, :num_specific],
            (-1, self.num_scenarios, self.num_specific_experts, width),
        )
        per_scenario = ops.einsum(
            "bsk,bskh->bsh", self.specific_gate(x), specific
        )
        return per_scenario, experts[:, num_specific:]

    def call(self, inputs: Sequence[Any]) -> Any:
        x, scenario = inputs
        ids = self._ids(scenario)
        if self.specific_kind == "full":
            per_scenario, shared_experts = self._full_specific(x)
            own = ops.one_hot(ids, self.num_scenarios, dtype=x.dtype)
            specific_out = ops.einsum("bs,bsh->bh", own, per_scenario)
            attention = ops.softmax(self._attention_logits(ids), axis=-1)
            attention = ops.multiply(attention, ops.subtract(1.0, own))
            attentive = ops.einsum("bs,bsh->bh", attention, per_scenario)
        else:
            shared_experts = self.experts(x)
            if self.num_attended:
                others, weights = self._attended(ids)
                routed = ops.concatenate([ids[:, None], others], axis=1)
            else:
                routed = ids[:, None]
            outputs = self._factored_specific(x, routed)  # [B, 1 + k, h]
            specific_out = outputs[:, 0]
            attentive = (
                ops.einsum("bk,bkh->bh", weights, outputs[:, 1:])
                if self.num_attended
                else ops.zeros_like(specific_out)
            )
        shared = ops.einsum(
            "bk,bkh->bh", self.shared_gate(x)[:, 0], shared_experts
        )
        return ops.concatenate([shared, specific_out, attentive], axis=-1)

    def named_gate_weights(self, inputs: Sequence[Any]) -> dict[str, Any]:
        """The gate inspection protocol (`kmtl.inspection`).

        Args:
            inputs: as in `call`.

        Returns:
            dict of `[B, E]` weights: `"shared"` over the shared experts;
            `"routed"` over the specific experts, each row by the gate of
            its own scenario; `"attention"`, the SAN weights over the `S`
            scenarios (0 on the own scenario and, with `"factored"`,
            outside the attended ones).
        """
        if not self.built:
            self.build(keras.tree.map_structure(lambda t: t.shape, inputs))
        x, scenario = inputs
        ids = self._ids(scenario)
        own = ops.one_hot(ids, self.num_scenarios, dtype=x.dtype)
        if self.specific_kind == "full":
            gates = self.specific_gate(x)  # [B, S, K]
            routed = ops.einsum("bs,bsk->bk", own, gates)
            attention = ops.softmax(self._attention_logits(ids), axis=-1)
            attention = ops.multiply(attention, ops.subtract(1.0, own))
        else:
            routed = self._factored_gates(x, ids[:, None])[:, 0]
            attention = ops.zeros_like(own)
            if self.num_attended:
                others, weights = self._attended(ids)
                attention = ops.sum(
                    ops.one_hot(others, self.num_scenarios, dtype=x.dtype)
                    * weights[:, :, None],
                    axis=1,
                )
        return {
            "shared": self.shared_gate(x)[:, 0],
            "routed": routed,
            "attention": attention,
        }

    def compute_output_shape(
        self, input_shape: Sequence[Any]
    ) -> tuple[int | None, ...]:
        return (tuple(input_shape[0])[0], 3 * self.expert_units[-1])

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            **constructor_config(self, ScenarioExtractionLayer),
        }


__all__ = ["SPECIFIC_KINDS", "ScenarioExtractionLayer"]

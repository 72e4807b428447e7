"""HiNet's scenario extraction layer: shared, specific and attentive parts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from kmtl import validation
from kmtl.layers.expert_mixture import ExpertMixture
from kmtl.layers.keras_objects import clone_initializer
from kmtl.layers.keras_objects import constructor_config
from kmtl.layers.scenario_index import check_scenario_ids


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
      `a = softmax(e_i A + c)`, `v_san = sum_{j != i} a_j v_j`.

    The output is `[v_sh, v_sp, v_san]` concatenated, as in the paper and
    the authors' code; as there, the scenario gate's softmax runs over all
    `S` scenarios and the own scenario's weight is then dropped, so the
    SAN weights sum to `1 - a_i` (with one scenario `v_san` is 0).

    All experts (the `S * num_specific_experts` specific ones, then the
    shared ones) are one batched `Experts` layer, and the specific gates
    one `MixtureGate` with `S` gates. The SAN needs every scenario's
    specific output on every example, so they are all computed (one large
    matmul) rather than gathering the own scenario's weights per example;
    the cost per example grows linearly with `S`.

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

    # HiNet: scenario extraction, then task extraction with CGC.
    x = keras.Input(shape=(10,))
    scenario = keras.Input(shape=(), dtype="int32")
    h = kmtl.layers.ScenarioExtractionLayer(num_scenarios=3)([x, scenario])
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

    @property
    def num_experts(self) -> int:
        """All experts: every scenario's specific ones, then the shared."""
        return (
            self.num_scenarios * self.num_specific_experts
            + self.num_shared_experts
        )

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
        self.specific_gate = self.build_gate(
            x_shape,
            self.num_scenarios,
            self.num_specific_experts,
            name="specific_gate",
        )
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

    def call(self, inputs: Sequence[Any]) -> Any:
        x, scenario = inputs
        ids = check_scenario_ids(
            ops.reshape(scenario, (-1,)),
            self.num_scenarios,
            f"(input 1 of layer {self.name})",
        )
        num_specific = self.num_scenarios * self.num_specific_experts
        width = self.expert_units[-1]
        experts = self.experts(x)  # [B, S * K_sp + K_sh, h]
        specific = ops.reshape(
            experts[:, :num_specific],
            (-1, self.num_scenarios, self.num_specific_experts, width),
        )
        # Every scenario's specific output for each example: [B, S, h].
        per_scenario = ops.einsum(
            "bsk,bskh->bsh", self.specific_gate(x), specific
        )
        shared = ops.einsum(
            "bk,bkh->bh", self.shared_gate(x)[:, 0], experts[:, num_specific:]
        )
        own = ops.one_hot(ids, self.num_scenarios, dtype=x.dtype)  # [B, S]
        specific_out = ops.einsum("bs,bsh->bh", own, per_scenario)
        embedding = ops.take(self.scenario_embeddings, ids, axis=0)
        attention = ops.softmax(
            ops.add(
                ops.matmul(embedding, self.attention_kernel),
                self.attention_bias,
            ),
            axis=-1,
        )
        attention = ops.multiply(attention, ops.subtract(1.0, own))
        attentive = ops.einsum("bs,bsh->bh", attention, per_scenario)
        return ops.concatenate([shared, specific_out, attentive], axis=-1)

    def compute_output_shape(
        self, input_shape: Sequence[Any]
    ) -> tuple[int | None, ...]:
        return (tuple(input_shape[0])[0], 3 * self.expert_units[-1])

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            **constructor_config(self, ScenarioExtractionLayer),
        }


__all__ = ["ScenarioExtractionLayer"]

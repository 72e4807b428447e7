"""The CGC switcher: one level of PLE (Progressive Layered Extraction)."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from kmtl import validation
from kmtl.layers.keras_objects import constructor_config
from kmtl.layers.switcher import Switcher
from kmtl.layers.switcher import register_switcher
from kmtl.layers.switcher import shape_list


def _shape_of(tensor: Any) -> tuple[int | None, ...]:
    return tuple(tensor.shape)


@register_switcher("cgc")
@keras.saving.register_keras_serializable(package="kmtl")
class CGCLayer(Switcher):
    """Customized Gate Control: task-specific and shared experts per task.

    With task experts `f_{k,j}` (`num_task_experts` per task), shared
    experts `s_j` (`num_shared_experts`), task inputs `x_k` and a shared
    input `x_s` (all equal to `x` at the first level):

    `y_k = sum_e softmax(x_k @ W_k + c_k)[e] * [f_{k,.}(x_k), s_.(x_s)][e]`

    and, with `return_shared=True`, a shared output mixing ALL experts:

    `y_s = sum_e softmax(x_s @ W_s + c_s)[e] * [f_{1..K,.}(x_.), s_.(x_s)][e]`

    All experts are one batched `Experts` layer, ordered task 0's experts,
    ..., task K-1's experts, then the shared experts; all gates are one
    `MixtureGate` whose static `expert_mask` zeroes the other tasks'
    experts. A PLE network is a stack of `CGCLayer`s, every level but the
    last built with `return_shared=True` and fed the previous level's list
    output.

    Args:
        num_tasks: int. The number of task branches `K`.
        num_shared_experts: int. The number of shared experts. Defaults to
            `2`.
        num_task_experts: int. The number of experts of each task.
            Defaults to `2`.
        return_shared: bool. Whether to also return the shared output (the
            last list element), as every PLE level but the last does.
            Defaults to `False`.
        **kwargs: The `Switcher` arguments (`expert_units` (256, 128),
            `activation`, `kernel_initializer`, `kernel_regularizer`) and
            base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: tensor of shape `[B, d]` (first level), or a list of
            `num_tasks + 1` tensors of shape `[B, d]`: the task inputs, then
            the shared input (the output of a level with
            `return_shared=True`).

    Returns:
        A list of `num_tasks` tensors of shape `[B, expert_units[-1]]`,
        followed by the shared output when `return_shared=True`.

    Example:

    ```python
    layer = kmtl.layers.CGCLayer(num_tasks=2, expert_units=(32, 16))
    ctr, cvr = layer(np.random.rand(8, 10))  # two [8, 16] tensors

    # PLE with two levels.
    inputs = keras.Input(shape=(10,))
    level_1 = kmtl.layers.CGCLayer(num_tasks=2, return_shared=True)(inputs)
    branches = kmtl.layers.CGCLayer(num_tasks=2)(level_1)
    outputs = [keras.layers.Dense(1)(b) for b in branches]
    model = keras.Model(inputs, outputs)
    ```

    Reference:
        - [Tang et al., 2020](https://dl.acm.org/doi/10.1145/3383313.3412236)
          (Progressive Layered Extraction (PLE), RecSys 2020).
    """

    expert_budget = "split"

    def __init__(
        self,
        num_tasks: int,
        num_shared_experts: int = 2,
        num_task_experts: int = 2,
        return_shared: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_tasks, **kwargs)
        self.num_shared_experts = validation.non_negative_int(
            num_shared_experts, "num_shared_experts"
        )
        self.num_task_experts = validation.non_negative_int(
            num_task_experts, "num_task_experts"
        )
        if num_shared_experts + num_task_experts < 1:
            raise ValueError(
                "Each task gate needs at least one expert: "
                "`num_shared_experts + num_task_experts` must be >= 1. "
                f"Received: num_shared_experts={num_shared_experts}, "
                f"num_task_experts={num_task_experts}"
            )
        self.return_shared = validation.boolean(return_shared, "return_shared")

    # --- Static structure ---

    @property
    def num_outputs(self) -> int:
        return self.num_tasks + int(self.return_shared)

    @property
    def num_experts(self) -> int:
        """All experts: the task experts of every task, then the shared."""
        return self.num_tasks * self.num_task_experts + self.num_shared_experts

    @property
    def expert_mask(self) -> list[list[int]]:
        """`[G][E]` 0/1: which experts each gate (tasks, then shared) mixes."""
        per_task = self.num_task_experts
        shared_start = self.num_tasks * per_task
        mask = np.zeros((self.num_outputs, self.num_experts), dtype=int)
        for k in range(self.num_tasks):
            mask[k, k * per_task : (k + 1) * per_task] = 1
            mask[k, shared_start:] = 1
        if self.return_shared:
            mask[self.num_tasks, :] = 1
        return mask.tolist()

    def _expert_sources(self) -> list[int]:
        """Index of each expert's input in the stacked list input."""
        sources = [
            k
            for k in range(self.num_tasks)
            for _ in range(self.num_task_experts)
        ]
        return sources + [self.num_tasks] * self.num_shared_experts

    # --- Layer ---

    def build(self, input_shape: Any) -> None:
        shapes = shape_list(input_shape)
        if shapes is None:
            shape = tuple(input_shape)
            if len(shape) != 2:
                raise ValueError(
                    "`CGCLayer` takes a tensor of shape [B, d] or a list of "
                    f"num_tasks + 1 = {self.num_tasks + 1} such tensors. "
                    f"Received: input_shape={input_shape}"
                )
            self._list_input = False
            expert_shape = gate_shape = shape
        else:
            dims = {s[-1] for s in shapes}
            if (
                len(shapes) != self.num_tasks + 1
                or any(len(s) != 2 for s in shapes)
                or len(dims) != 1
                or None in dims
            ):
                raise ValueError(
                    "A list input of `CGCLayer` must hold num_tasks + 1 = "
                    f"{self.num_tasks + 1} tensors of shape [B, d] with the "
                    f"same known d. Received: input_shape={input_shape}"
                )
            self._list_input = True
            batch, dim = shapes[0][0], shapes[0][-1]
            expert_shape = (batch, self.num_experts, dim)
            gate_shape = (batch, self.num_outputs, dim)
        self.experts = self.build_experts(expert_shape, self.num_experts)
        self.gate = self.build_gate(
            gate_shape, self.num_outputs, self.num_experts, self.expert_mask
        )
        self.built = True

    def _split_inputs(self, inputs: Any) -> tuple[Any, Any]:
        """Returns the inputs of the experts and of the gates."""
        if not self._list_input:
            if isinstance(inputs, (list, tuple)):
                raise ValueError(
                    "This `CGCLayer` was built for one tensor input. "
                    f"Received: a list of {len(inputs)} tensors"
                )
            return inputs, inputs
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(
                "This `CGCLayer` was built for a list of "
                f"{self.num_tasks + 1} tensors. Received: one tensor"
            )
        stacked = ops.stack(list(inputs), axis=1)  # [B, K + 1, d]
        expert_inputs = ops.take(stacked, self._expert_sources(), axis=1)
        if self.return_shared:
            gate_inputs = stacked
        else:
            gate_inputs = ops.take(stacked, list(range(self.num_tasks)), axis=1)
        return expert_inputs, gate_inputs

    def gate_weights(self, inputs: Any) -> Any:
        """Returns the gate weights `[B, G, E_total]`.

        Gates are the task gates, then the shared gate (with
        `return_shared`); experts are ordered as in `expert_mask`.
        """
        if not self.built:
            self.build(keras.tree.map_structure(_shape_of, inputs))
        _, gate_inputs = self._split_inputs(inputs)
        return self.gate(gate_inputs)

    def gate_names(self) -> list[str]:
        """The gates' names: `"task_<k>"`, then `"shared"` (with
        `return_shared`)."""
        names = [f"task_{k}" for k in range(self.num_tasks)]
        return names + ["shared"] * int(self.return_shared)

    def named_gate_weights(self, inputs: Any) -> dict[str, Any]:
        """The gate inspection protocol (`kmtl.inspection`).

        Args:
            inputs: as in `call`.

        Returns:
            dict gate name (`gate_names()`) -> `[B, E_total]` weights,
            zero on the experts the gate cannot use (`named_gate_masks`).
        """
        weights = self.gate_weights(inputs)  # [B, G, E_total]
        return {name: weights[:, g] for g, name in enumerate(self.gate_names())}

    def named_gate_masks(self) -> dict[str, list[int]]:
        """Gate name -> 0/1 per expert: the experts that gate may use."""
        return dict(zip(self.gate_names(), self.expert_mask, strict=True))

    def call(self, inputs: Any) -> list[Any]:
        expert_inputs, gate_inputs = self._split_inputs(inputs)
        experts = self.experts(expert_inputs)  # [B, E, H]
        weights = self.gate(gate_inputs)  # [B, G, E]
        mixed = ops.matmul(weights, experts)  # as in MMoELayer.call
        return list(ops.unstack(mixed, num=self.num_outputs, axis=1))

    def compute_output_shape(self, input_shape: Any) -> list[tuple[Any, ...]]:
        shapes = shape_list(input_shape)
        batch = shapes[0][0] if shapes is not None else tuple(input_shape)[0]
        return [(batch, self.expert_units[-1])] * self.num_outputs

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(constructor_config(self, CGCLayer))
        return config


__all__ = ["CGCLayer"]

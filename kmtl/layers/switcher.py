"""Switchers: layers that turn one representation into one per branch."""

from __future__ import annotations

from typing import Any

import keras

SWITCHER_NAMES = ("shared_bottom", "omoe", "mmoe", "cgc")


def _shape_list(shape: Any) -> list[tuple[Any, ...]] | None:
    """Returns the shapes of a list input, or None for a single shape."""
    if isinstance(shape, (list, tuple)) and shape:
        if all(isinstance(s, (list, tuple)) for s in shape):
            return [tuple(s) for s in shape]
    return None


class Switcher(keras.layers.Layer):
    """Base class of the layers that route a representation to K branches.

    A switcher maps one representation `x` of shape `[B, d]` (or, for
    hierarchical ones such as stacked CGC levels, a list of per-branch
    representations) to a Python list of `num_outputs` tensors
    `[y_1, ..., y_K]`, one per downstream branch (usually a task tower):

    `[y_1, ..., y_K] = switcher(x)`

    Shared-bottom, OMoE, MMoE and CGC (a PLE level) are switchers, so a model
    can swap them by name with `get_switcher`. Subclasses implement
    `num_outputs`, `build`, `call` (returning a list), `compute_output_shape`
    (a list of shapes) and `get_config`.

    Args:
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: tensor of shape `[B, d]`, or a list of them for switchers that
            take one input per branch.

    Returns:
        A list of `num_outputs` tensors of shape `[B, h]`.

    Example:

    ```python
    switcher = kmtl.layers.get_switcher("mmoe", num_outputs=2, num_experts=4)
    ctr, cvr = switcher(np.random.rand(8, 16))

    inputs = keras.Input(shape=(16,))
    branches = kmtl.layers.get_switcher("cgc", num_outputs=2)(inputs)
    outputs = [keras.layers.Dense(1)(b) for b in branches]
    model = keras.Model(inputs, outputs)
    ```

    Reference:
        - Multi-Faceted Hierarchical Multi-Task Learning for Recommender
          Systems (MFH), CIKM 2022, section III.C (the switcher).
    """

    @property
    def num_outputs(self) -> int:
        """The number of tensors returned by `call`."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement `num_outputs`."
        )


def get_switcher(name: str, /, num_outputs: int, **kwargs: Any) -> Switcher:
    """Builds the switcher registered under `name`.

    Args:
        name: str. One of `"shared_bottom"` (`SharedBottomLayer`), `"omoe"`
            (`MMoELayer` with `shared_gate=True`), `"mmoe"` (`MMoELayer`) and
            `"cgc"` (`CGCLayer`, one PLE level). Positional-only, so that
            the layer's own `name=` can be passed in `kwargs`.
        num_outputs: int. The number of task branches; passed as `num_tasks`.
            A `CGCLayer` built with `return_shared=True` returns one more
            tensor (the shared representation, last).
        **kwargs: The other constructor arguments of the layer.

    Returns:
        The switcher layer (not built).

    Example:

    ```python
    layer = kmtl.layers.get_switcher("omoe", 2, num_experts=4, name="moe")
    ```
    """
    # Imported here: the switcher modules import this one.
    from kmtl.layers.cgc import CGCLayer
    from kmtl.layers.mmoe import MMoELayer
    from kmtl.layers.shared_bottom import SharedBottomLayer

    if name == "shared_bottom":
        return SharedBottomLayer(num_tasks=num_outputs, **kwargs)
    if name == "mmoe":
        return MMoELayer(num_tasks=num_outputs, **kwargs)
    if name == "omoe":
        if "shared_gate" in kwargs:
            raise ValueError(
                "The `omoe` switcher always has `shared_gate=True`; use "
                "`mmoe` to choose it. "
                f"Received: shared_gate={kwargs['shared_gate']!r}"
            )
        return MMoELayer(num_tasks=num_outputs, shared_gate=True, **kwargs)
    if name == "cgc":
        return CGCLayer(num_tasks=num_outputs, **kwargs)
    raise ValueError(
        f"Unknown switcher `name`: expected one of {list(SWITCHER_NAMES)}. "
        f"Received: name={name!r}"
    )


__all__ = ["SWITCHER_NAMES", "Switcher", "get_switcher"]

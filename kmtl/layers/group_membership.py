"""GroupMembership: the one-hot group of each row, read from a raw column."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from kmtl import validation
from kmtl.layers.keras_objects import constructor_config


@keras.saving.register_keras_serializable(package="kmtl")
class GroupMembership(keras.layers.Layer):
    """The one-hot membership of each row in named groups (user groups).

    `m[b, g] = 1` where `column[b] == groups[g]`, else 0; a row whose
    value is none of the groups (missing, unknown) belongs to
    `default_group`, so every row is in exactly one group:

    `m[b] = one_hot(index(column[b]) or index(default_group), G)`

    A string column is looked up with `keras.layers.StringLookup` (the
    TensorFlow backend); an integer column (`integer_ids=True`) is compared
    with the groups' decimal ids on any backend.

    Args:
        groups: list of str. The group names, or the decimal ids of an
            integer column (`"0"`, `"3"`).
        default_group: str or None. The group of rows holding another value.
            Defaults to `None`: `groups[0]`.
        integer_ids: bool. Whether the column holds integer ids. Defaults to
            `False` (strings).
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: the raw column, `[B]` or `[B, 1]` strings (or int ids).

    Returns:
        A float tensor `[B, len(groups)]`, one 1 per row.

    Example:

    ```python
    layer = kmtl.layers.GroupMembership(["new", "regular"])
    layer(np.array(["regular", "new", ""], dtype=object))
    # [[0, 1], [1, 0], [1, 0]]: "" (missing) is in the default group "new"

    group = keras.Input(shape=(), dtype="string")
    membership = kmtl.layers.GroupMembership(["new", "regular"])(group)
    model = keras.Model(group, membership)
    ```

    Reference:
        - Multi-Faceted Hierarchical Multi-Task Learning for Recommender
          Systems (MFH), CIKM 2022, section V.A.3 (each row is served by
          its user group's tasks).
    """

    def __init__(
        self,
        groups: Sequence[str],
        default_group: str | None = None,
        integer_ids: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.groups = validation.name_list(groups, "groups")
        self.default_group = validation.Check(validation.text, True)(
            default_group, "default_group"
        )
        self.integer_ids = validation.boolean(integer_ids, "integer_ids")
        if not self.groups or len(set(self.groups)) != len(self.groups):
            raise ValueError(
                "`groups` must be a non-empty list of distinct names. "
                f"Received: groups={list(groups)}"
            )
        if default_group is not None and default_group not in self.groups:
            raise ValueError(
                f"`default_group` must be one of {list(self.groups)}. "
                f"Received: default_group={default_group!r}"
            )
        if self.integer_ids and not all(
            g.lstrip("-").isdigit() for g in self.groups
        ):
            raise ValueError(
                "With `integer_ids=True`, `groups` must be decimal ids such "
                f"as '0' or '3'. Received: groups={list(groups)}"
            )
        self._default = self.groups.index(default_group or self.groups[0])
        self._lookup = (
            None
            if self.integer_ids
            else keras.layers.StringLookup(
                vocabulary=list(self.groups),
                num_oov_indices=1,
                mask_token=None,
                name="lookup",
            )
        )

    def build(self, input_shape: Sequence[int | None]) -> None:
        if self._lookup is not None:
            self._lookup.build(input_shape)
        self.built = True

    def call(self, inputs: Any) -> Any:
        raw = ops.reshape(inputs, (-1,))
        size = len(self.groups)
        if self.integer_ids:
            ids = ops.stack(
                [ops.equal(raw, int(g)) for g in self.groups], axis=1
            )
            index = ops.where(
                ops.any(ids, axis=1),
                ops.argmax(ops.cast(ids, "int32"), axis=1),
                self._default,
            )
        else:
            found = ops.cast(self._lookup(raw), "int32")  # 0 is unknown
            index = ops.where(found > 0, found - 1, self._default)
        return ops.one_hot(index, size, dtype=self.compute_dtype)

    def compute_output_shape(
        self, input_shape: Sequence[int | None]
    ) -> tuple[int | None, ...]:
        return (input_shape[0], len(self.groups))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(constructor_config(self, GroupMembership))
        return config


__all__ = ["GroupMembership"]

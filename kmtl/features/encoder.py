"""FeatureEncoder: raw feature dict -> field embeddings, dense vector,
scenario index."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
from keras import ops

from kmtl.features.spec import SEQUENCE_INT_PAD
from kmtl.features.spec import SEQUENCE_STRING_PAD
from kmtl.features.spec import CategoricalFeature
from kmtl.features.spec import FeatureSpec
from kmtl.features.spec import NumericalFeature
from kmtl.features.spec import SequenceFeature
from kmtl.layers.scenario_index import check_scenario_ids


@keras.saving.register_keras_serializable(package="kmtl")
class FeatureEncoder(keras.layers.Layer):
    """Encodes the raw inputs of a `FeatureSpec` for a model backbone.

    Every categorical field and every sequence owns a slice of ONE embedding
    table `[sum of num_ids, embedding_dim]`, so all fields of a batch are
    embedded by a single gather (its gradient is sparse). Raw values become
    ids inside the graph, so a served model takes raw features:

    - integer ids outside `[0, vocabulary_size)` map to the field's OOV row
      (never an error, and never an out-of-range gather, which fails on CPU
      and silently returns zeros on GPU);
    - strings go through `keras.layers.StringLookup` (unknown -> OOV) or
      `keras.layers.Hashing`;
    - sequences `[B, L]` are embedded id by id and mean- or sum-pooled over
      the non-padding positions (padding is `-1` or `""`); a sequence with
      `shared_with` reads the rows of that categorical feature;
    - integer ids are compared with the vocabulary at their full (int64)
      width before they become int32 rows, so a 64-bit id such as
      `2**32 + 3` is OOV, not id 3;
    - numericals are normalised, `(x - mean) / sqrt(variance)`, and
      concatenated. A missing numerical (NaN or +-inf) is filled with the
      feature's mean, i.e. 0 after normalisation (0 for a raw feature), and
      flagged 0 in `"dense_mask"`;
    - bias features (`bias=True`: position, device) are kept apart, in the
      `"bias_*"` outputs, so that only models that model the bias see them.

    String features need the TensorFlow backend (the lookup tables are TF
    ops); integer and float features work on every backend.

    Args:
        spec: `FeatureSpec` or its dict. The features to encode.
        embeddings_initializer: str or initializer. Defaults to
            `"uniform"` (as `keras.layers.Embedding`).
        embeddings_regularizer: str or regularizer. Defaults to `None`.

    Call arguments:
        inputs: dict name -> raw tensor, as `kmtl.inputs(spec)` builds.

    Returns:
        dict with `"fields"`: `[B, F, D]` embeddings of the categorical then
        sequence features in spec order (F may be 0); `"dense"`: `[B, Dd]`
        normalised numericals, missing values filled (absent when there are
        none); `"dense_mask"`: `[B, Dd]` floats, 1 where the numerical was
        present and 0 where it was missing (with `"dense"`); `"scenario"`:
        `[B]` int32 scenario index (absent without a scenario), checked to
        be in range on the TensorFlow backend with an error naming the
        column; `"levels"`: `[B, L]` int32 ids of the scenario hierarchy
        levels, coarse to fine (only when the scenario has levels).
        With sequences, `"sequences"`: dict name -> `[B, L, D]` unpooled
        step embeddings, and `"sequence_masks"`: dict name -> `[B, L]`
        floats, 1 at real steps, 0 at padding. With bias features,
        `"bias_fields"`: `[B, Fb, D]` embeddings of the categorical ones;
        `"bias_dense"`: `[B, Db]` normalised numerical ones (missing filled
        with 0); `"bias_present"`: `[B, 1]` floats, 1 where every bias
        feature is present (id >= 0, non-empty string, finite number) and 0
        where one is missing: what the serving signatures send.

    Example:

    ```python
    spec = kmtl.FeatureSpec(
        features=[
            kmtl.CategoricalFeature("item", vocabulary_size=100),
            kmtl.NumericalFeature("price", mean=5.0, variance=4.0),
        ],
        tasks=[kmtl.TaskSpec("ctr", label="click")],
    )
    x = kmtl.inputs(spec)
    encoded = kmtl.features.FeatureEncoder(spec)(x)
    encoded["fields"].shape  # (None, 1, 16)
    encoded["dense"].shape  # (None, 1)
    ```
    """

    def __init__(
        self,
        spec: FeatureSpec | Mapping[str, Any],
        embeddings_initializer: Any = "uniform",
        embeddings_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(spec, Mapping):
            spec = FeatureSpec.from_dict(spec)
        if not isinstance(spec, FeatureSpec):
            raise ValueError(
                "FeatureEncoder: `spec` must be a FeatureSpec or its dict. "
                f"Received: spec={spec!r}"
            )
        self.spec = spec
        self.embeddings_initializer = keras.initializers.get(
            embeddings_initializer
        )
        self.embeddings_regularizer = keras.regularizers.get(
            embeddings_regularizer
        )
        self.embedding_dim = spec.embedding_dim
        bias = set(spec.bias_names)
        self.field_names = [
            f.name
            for f in spec.features
            if isinstance(f, (CategoricalFeature, SequenceFeature))
            and f.name not in bias
        ]
        self.sequence_names = spec.names("sequence")
        self.dense_names = [n for n in spec.names("numerical") if n not in bias]
        self.dense_dim = sum(spec.feature(n).dim for n in self.dense_names)
        self.bias_field_names = [
            n for n in spec.names("categorical") if n in bias
        ]
        self.bias_dense_names = [
            n for n in spec.names("numerical") if n in bias
        ]
        self.bias_dense_dim = sum(
            spec.feature(n).dim for n in self.bias_dense_names
        )
        # Rows of the shared table: one slice per feature owning a vocabulary.
        self._offsets: dict[str, int] = {}
        rows = 0
        for f in spec.features:
            owns_vocab = isinstance(f, CategoricalFeature) or (
                isinstance(f, SequenceFeature) and f.shared_with is None
            )
            if owns_vocab:
                self._offsets[f.name] = rows
                rows += f.num_ids
        self.num_rows = rows
        self._lookups = {}
        for f in spec.features:
            if isinstance(f, NumericalFeature):
                continue
            vocab_owner = self._vocab_owner(f)
            if vocab_owner.name in self._lookups:
                continue
            if vocab_owner.vocabulary is not None:
                self._lookups[vocab_owner.name] = keras.layers.StringLookup(
                    vocabulary=list(vocab_owner.vocabulary),
                    num_oov_indices=1,
                    mask_token=None,
                    output_mode="int",
                    name=f"lookup_{vocab_owner.name}",
                )
            elif vocab_owner.hash_bins is not None:
                self._lookups[vocab_owner.name] = keras.layers.Hashing(
                    num_bins=vocab_owner.hash_bins,
                    name=f"hash_{vocab_owner.name}",
                )

    def _vocab_owner(self, feature: Any) -> Any:
        if isinstance(feature, SequenceFeature) and feature.shared_with:
            return self.spec.feature(feature.shared_with)
        return feature

    def build(self, input_shape: Any = None) -> None:
        if self.num_rows:
            self.embeddings = self.add_weight(
                name="embeddings",
                shape=(self.num_rows, self.embedding_dim),
                initializer=self.embeddings_initializer,
                regularizer=self.embeddings_regularizer,
            )
        self.built = True

    def _table_ids(self, feature: Any, raw: Any) -> Any:
        """Raw values of one feature -> int32 rows of the shared table."""
        owner = self._vocab_owner(feature)
        if owner.name in self._lookups:
            local = self._lookups[owner.name](raw)
        else:
            # Compare at the input's own (int64) width, then cast: a cast
            # first would wrap 2**32 + 3 to 3, a valid id.
            in_range = ops.logical_and(
                ops.greater_equal(raw, 0),
                ops.less(raw, owner.vocabulary_size),
            )
            local = ops.where(in_range, raw, owner.vocabulary_size)
        return ops.add(ops.cast(local, "int32"), self._offsets[owner.name])

    def call(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        self._check_inputs(inputs)
        out: dict[str, Any] = {}
        if self.field_names:
            ids, masks = [], []
            for name in self.field_names:
                feature = self.spec.feature(name)
                raw = inputs[name]
                if isinstance(feature, SequenceFeature):
                    pad = (
                        SEQUENCE_STRING_PAD
                        if self._vocab_owner(feature).dtype == "string"
                        else SEQUENCE_INT_PAD
                    )
                    masks.append(ops.not_equal(raw, pad))
                    ids.append(self._table_ids(feature, raw))
                else:
                    ids.append(
                        ops.expand_dims(self._table_ids(feature, raw), -1)
                    )
            # One gather for every field and every sequence position.
            embedded = ops.take(
                self.embeddings, ops.concatenate(ids, axis=1), axis=0
            )
            out["fields"] = self._pool(embedded, masks, out)
        else:
            batch = ops.shape(next(iter(inputs.values())))[0]
            out["fields"] = ops.zeros((batch, 0, self.embedding_dim))
        if self.dense_names:
            out["dense"], out["dense_mask"] = self._dense(
                inputs, self.dense_names
            )
        if self.bias_field_names or self.bias_dense_names:
            out.update(self._bias(inputs))
        scenario = self.spec.scenario
        if scenario is not None:
            out["scenario"] = check_scenario_ids(
                inputs[scenario.name], scenario.num_scenarios, scenario.name
            )
            if scenario.levels:
                out["levels"] = ops.stack(
                    [
                        check_scenario_ids(inputs[column], size, column)
                        for column, size in zip(
                            scenario.level_names,
                            scenario.level_sizes,
                            strict=True,
                        )
                    ],
                    axis=1,
                )
        return out

    def _bias(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """The bias features' encodings and whether all are present."""
        out, present = {}, []
        if self.bias_field_names:
            ids = []
            for name in self.bias_field_names:
                feature = self.spec.feature(name)
                raw = inputs[name]
                present.append(
                    ops.not_equal(raw, SEQUENCE_STRING_PAD)
                    if feature.dtype == "string"
                    else ops.greater_equal(raw, 0)
                )
                ids.append(ops.expand_dims(self._table_ids(feature, raw), -1))
            out["bias_fields"] = ops.take(
                self.embeddings, ops.concatenate(ids, axis=1), axis=0
            )
        if self.bias_dense_names:
            dense, mask = self._dense(inputs, self.bias_dense_names)
            out["bias_dense"] = dense
            present.append(ops.all(ops.greater(mask, 0.5), axis=-1))
        every = present[0]
        for other in present[1:]:
            every = ops.logical_and(every, other)
        out["bias_present"] = ops.expand_dims(
            ops.cast(every, self.compute_dtype), -1
        )
        return out

    def _pool(self, embedded: Any, masks: list[Any], out: dict) -> Any:
        """Splits the gathered rows per field; pools each sequence and puts
        its unpooled steps and mask in `out["sequences"]` and
        `out["sequence_masks"]`."""
        fields, start, seq = [], 0, 0
        for name in self.field_names:
            feature = self.spec.feature(name)
            if not isinstance(feature, SequenceFeature):
                fields.append(embedded[:, start : start + 1, :])
                start += 1
                continue
            rows = embedded[:, start : start + feature.max_length, :]
            start += feature.max_length
            mask = ops.expand_dims(ops.cast(masks[seq], rows.dtype), -1)
            seq += 1
            out.setdefault("sequences", {})[name] = rows
            out.setdefault("sequence_masks", {})[name] = mask[..., 0]
            pooled = ops.sum(rows * mask, axis=1, keepdims=True)
            if feature.combiner == "mean":
                count = ops.sum(mask, axis=1, keepdims=True)
                pooled = pooled / ops.maximum(count, 1.0)
            fields.append(pooled)
        if len(fields) == 1:
            return fields[0]
        if start == len(fields):  # no sequences: the gather is the output
            return embedded
        return ops.concatenate(fields, axis=1)

    def _dense(
        self, inputs: Mapping[str, Any], names: list[str]
    ) -> tuple[Any, Any]:
        """The numericals `names` side by side, normalised in one affine op
        (many scalar inputs cost one op, not one per column), and their mask.

        Returns:
            (dense, mask): `[B, Dd]` values with every non-finite one
            replaced by its feature's mean (0 once normalised), and `[B, Dd]`
            1.0 where the value was finite, else 0.0.
        """
        parts, means, scales = [], [], []
        for name in names:
            feature: NumericalFeature = self.spec.feature(name)
            x = ops.cast(inputs[name], self.compute_dtype)
            parts.append(ops.reshape(x, (-1, feature.dim)))
            if feature.normalized:
                mean = np.asarray(feature.mean, "float32")
                scale = 1.0 / np.sqrt(np.asarray(feature.variance, "float32"))
            else:
                mean, scale = np.float32(0.0), np.float32(1.0)
            means.append(np.broadcast_to(mean, (feature.dim,)))
            scales.append(np.broadcast_to(scale, (feature.dim,)))
        x = parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)
        mean, scale = np.concatenate(means), np.concatenate(scales)
        present = ops.isfinite(x)
        if np.any(mean != 0.0) or np.any(scale != 1.0):
            x = (x - mean) * scale
        x = ops.where(present, x, ops.zeros_like(x))
        return x, ops.cast(present, self.compute_dtype)

    def _check_inputs(self, inputs: Mapping[str, Any]) -> None:
        if not isinstance(inputs, Mapping):
            raise ValueError(
                "FeatureEncoder expects a dict of raw features keyed by "
                f"name. Received: {type(inputs).__name__}"
            )
        missing = [n for n in self.spec.input_names if n not in inputs]
        if missing:
            raise ValueError(
                f"FeatureEncoder: missing input feature(s) {missing}. "
                f"Expected {self.spec.input_names}."
            )

    def compute_output_spec(self, inputs: Mapping[str, Any]) -> dict:
        batch = next(iter(inputs.values())).shape[0]
        out = {
            "fields": keras.KerasTensor(
                (batch, len(self.field_names), self.embedding_dim),
                dtype=self.compute_dtype,
            )
        }
        if self.dense_names:
            for key in ("dense", "dense_mask"):
                out[key] = keras.KerasTensor(
                    (batch, self.dense_dim), dtype=self.compute_dtype
                )
        if self.sequence_names:
            lengths = {
                n: self.spec.feature(n).max_length for n in self.sequence_names
            }
            out["sequences"] = {
                n: keras.KerasTensor(
                    (batch, length, self.embedding_dim),
                    dtype=self.compute_dtype,
                )
                for n, length in lengths.items()
            }
            out["sequence_masks"] = {
                n: keras.KerasTensor((batch, length), dtype=self.compute_dtype)
                for n, length in lengths.items()
            }
        if self.bias_field_names:
            out["bias_fields"] = keras.KerasTensor(
                (batch, len(self.bias_field_names), self.embedding_dim),
                dtype=self.compute_dtype,
            )
        if self.bias_dense_names:
            out["bias_dense"] = keras.KerasTensor(
                (batch, self.bias_dense_dim), dtype=self.compute_dtype
            )
        if self.bias_field_names or self.bias_dense_names:
            out["bias_present"] = keras.KerasTensor(
                (batch, 1), dtype=self.compute_dtype
            )
        if self.spec.scenario is not None:
            out["scenario"] = keras.KerasTensor((batch,), dtype="int32")
            if self.spec.scenario.levels:
                out["levels"] = keras.KerasTensor(
                    (batch, len(self.spec.scenario.levels)), dtype="int32"
                )
        return out

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "spec": self.spec.to_dict(),
                "embeddings_initializer": keras.initializers.serialize(
                    self.embeddings_initializer
                ),
                "embeddings_regularizer": keras.regularizers.serialize(
                    self.embeddings_regularizer
                ),
            }
        )
        return config

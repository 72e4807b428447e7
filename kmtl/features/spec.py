"""Feature, scenario and task specifications: the contract between data,
models and serving.

A `FeatureSpec` says which raw columns a model takes (and how to turn them
into ids and floats), which column is the scenario, and which tasks it
predicts. It is plain data: validated on construction, round-tripped through
dicts and JSON, and inferable from a pandas DataFrame.

Example:

```python
spec = kmtl.FeatureSpec(
    features=[
        kmtl.CategoricalFeature("user_id", vocabulary_size=1000),
        kmtl.CategoricalFeature("city", vocabulary=["paris", "lyon"]),
        kmtl.NumericalFeature("price", mean=3.0, variance=4.0),
    ],
    tasks=[
        kmtl.TaskSpec("ctr", label="click"),
        kmtl.TaskSpec("cvr", label="purchase", sample_space="ctr"),
    ],
)
spec2 = kmtl.FeatureSpec.from_json(spec.to_json())
assert spec2 == spec
```
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import ClassVar

import numpy as np

from kmtl import validation

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CATEGORICAL_DTYPES = ("int64", "string")
TASK_KINDS = ("binary", "regression", "multiclass")
SEQUENCE_INT_PAD = -1
SEQUENCE_STRING_PAD = ""
DEFAULT_LOSSES = {
    "binary": "binary_crossentropy",
    "regression": "mean_squared_error",
    "multiclass": "sparse_categorical_crossentropy",
}
DEFAULT_METRICS = {
    "binary": ("auc",),
    "regression": ("mae",),
    "multiclass": ("accuracy",),
}


def _check_name(what: str, name: Any) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"A {what} name must be a Python identifier (letters, digits, "
            "underscores; it becomes a SavedModel signature key). "
            f"Received: name={name!r}"
        )


def _checked(obj: Any, arg: str, check: Any, owner: str) -> Any:
    """Runs a `kmtl.validation` check on field `arg` of a (frozen) spec and
    stores its canonical value (a NumPy integer becomes an `int`)."""
    value = check(getattr(obj, arg), arg, f"{owner}: ")
    object.__setattr__(obj, arg, value)
    return value


# None, or a non-empty string.
_optional_text = validation.Check(validation.text, optional=True)


_OMIT_DEFAULT = {"omit_default": True}
"""Field metadata: `to_dict` leaves the field out while it has its default
(newer optional fields, so older spec files and dicts stay as they were)."""


def _vocabulary_entry(value: Any) -> str | None:
    """A vocabulary entry as a string, or `None` when it cannot be one
    (missing values, containers, booleans, non-finite numbers)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return str(value)
    if isinstance(value, (float, np.floating)) and math.isfinite(value):
        return str(value)
    return None


@dataclasses.dataclass(frozen=True)
class CategoricalFeature:
    """A categorical column, embedded as one field.

    Exactly one of `vocabulary_size`, `vocabulary` or `hash_bins` says how raw
    values become ids. Values outside the vocabulary go to one
    out-of-vocabulary (OOV) bucket, never to an error.

    Missing values are normal input: `kmtl.data` turns a missing string
    (`None`, NaN) into `""` and a missing integer id (NaN in a column that
    pandas made float) into `-1`, which both land in the OOV bucket (with
    hashing, in the bin that value hashes to). Keep `""` out of a
    vocabulary, as `FeatureSpec.from_dataframe` does, or it stands for the
    missing values too.

    Args:
        name: str. The column and input name.
        vocabulary_size: int. Raw values are integer ids in
            `[0, vocabulary_size)`; others (negative, too large) are OOV.
        vocabulary: list of str. Raw values are strings from this list.
        hash_bins: int. Raw values (int or str, see `dtype`) are hashed into
            this many buckets.
        dtype: str. Raw dtype, `"int64"` or `"string"`. Defaults to
            `"string"` with a vocabulary, else `"int64"`.
        group: str. A tag such as `"user"`, `"item"`, `"context"`,
            `"domain"`, `"prior"` that some models select fields by.
            Defaults to `None`.
        bias: bool. A bias feature (display position, device, ...): a
            training input only. Bias-aware models (`biasnet`) feed it to a
            shallow tower whose logit is added in training and left out at
            serving; every other model ignores it; exported signatures never
            take it. Defaults to `False`.

    Example:

    >>> CategoricalFeature("country", vocabulary=["es", "fr"]).num_ids
    3
    """

    name: str
    vocabulary_size: int | None = None
    vocabulary: tuple[str, ...] | None = None
    hash_bins: int | None = None
    dtype: str | None = None
    group: str | None = None
    bias: bool = dataclasses.field(default=False, metadata=_OMIT_DEFAULT)
    kind: ClassVar[str] = "categorical"

    def __post_init__(self) -> None:
        _check_name("feature", self.name)
        owner = f"CategoricalFeature {self.name!r}"
        given = [
            a
            for a in ("vocabulary_size", "vocabulary", "hash_bins")
            if getattr(self, a) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                f"{owner}: give exactly one of `vocabulary_size`, "
                f"`vocabulary` or `hash_bins`. Received: {given or 'none'}"
            )
        if self.vocabulary is not None:
            vocab = (
                tuple(_vocabulary_entry(v) for v in self.vocabulary)
                if isinstance(self.vocabulary, (list, tuple, np.ndarray))
                else ()
            )
            if not vocab or None in vocab or len(set(vocab)) != len(vocab):
                raise ValueError(
                    f"{owner}: `vocabulary` must be a non-empty list of "
                    "distinct strings (no missing values). "
                    f"Received: vocabulary={self.vocabulary!r}"
                )
            object.__setattr__(self, "vocabulary", vocab)
        for arg in ("vocabulary_size", "hash_bins"):
            if getattr(self, arg) is not None:
                _checked(self, arg, validation.positive_int, owner)
        _checked(self, "group", _optional_text, owner)
        _checked(self, "bias", validation.boolean, owner)
        default = "string" if self.vocabulary is not None else "int64"
        dtype = default if self.dtype is None else self.dtype
        if not isinstance(dtype, str) or dtype not in CATEGORICAL_DTYPES:
            raise ValueError(
                f"{owner}: `dtype` must be one of {CATEGORICAL_DTYPES}. "
                f"Received: dtype={self.dtype!r}"
            )
        if self.vocabulary is not None and dtype != "string":
            raise ValueError(
                f"{owner}: a `vocabulary` is for string values; integer ids "
                "use `vocabulary_size`. Received: dtype='int64'"
            )
        if self.vocabulary_size is not None and dtype != "int64":
            raise ValueError(
                f"{owner}: `vocabulary_size` is for integer ids; strings use "
                "`vocabulary` or `hash_bins`. Received: dtype='string'"
            )
        object.__setattr__(self, "dtype", dtype)

    @property
    def num_ids(self) -> int:
        """Rows the field needs in an embedding table, the OOV bucket included
        (hashing has no OOV: every value lands in a bin)."""
        if self.vocabulary is not None:
            return len(self.vocabulary) + 1
        if self.hash_bins is not None:
            return self.hash_bins
        return self.vocabulary_size + 1


@dataclasses.dataclass(frozen=True)
class NumericalFeature:
    """A float column (or a fixed-width float vector), optionally normalised.

    With `mean` and `variance` set, the encoder feeds
    `(x - mean) / sqrt(variance)`; `FeatureSpec.from_dataframe` adapts them
    from data, ignoring NaN and infinite values. A vector feature
    (`dim > 1`) packs many numericals into one input, which is much cheaper
    than one input per column.

    Missing values are normal input: the encoder replaces a non-finite
    value (NaN, +-inf) by the feature's `mean` (so it is 0 after
    normalisation; 0 for a raw feature) and reports it in its
    `"dense_mask"` output (1 = present, 0 = missing).

    Args:
        name: str. The column and input name.
        dim: int. Width of the value: 1 for a scalar column. Defaults to 1.
        mean: float or list of `dim` floats. Defaults to `None` (raw).
        variance: float or list of `dim` floats, > 0. Defaults to `None`.
        group: str. A field-group tag. Defaults to `None`.
        bias: bool. A training-only bias feature, as for
            `CategoricalFeature`. Defaults to `False`.

    Example:

    >>> NumericalFeature("price", mean=10.0, variance=4.0).normalized
    True
    """

    name: str
    dim: int = 1
    mean: float | tuple[float, ...] | None = None
    variance: float | tuple[float, ...] | None = None
    group: str | None = None
    bias: bool = dataclasses.field(default=False, metadata=_OMIT_DEFAULT)
    kind: ClassVar[str] = "numerical"
    dtype: ClassVar[str] = "float32"

    def __post_init__(self) -> None:
        _check_name("feature", self.name)
        owner = f"NumericalFeature {self.name!r}"
        _checked(self, "dim", validation.positive_int, owner)
        _checked(self, "group", _optional_text, owner)
        _checked(self, "bias", validation.boolean, owner)
        if (self.mean is None) != (self.variance is None):
            raise ValueError(
                f"{owner}: give both `mean` and `variance`, or neither. "
                f"Received: mean={self.mean}, variance={self.variance}"
            )
        if self.mean is None:
            return
        for arg in ("mean", "variance"):
            try:
                value = np.atleast_1d(np.asarray(getattr(self, arg), "float64"))
            except (TypeError, ValueError):
                value = None
            if value is None or isinstance(getattr(self, arg), str):
                raise ValueError(
                    f"{owner}: `{arg}` must be a float or a list of floats. "
                    f"Received: {arg}={getattr(self, arg)!r}"
                ) from None
            if value.shape not in ((1,), (self.dim,)):
                raise ValueError(
                    f"{owner}: `{arg}` must be a float or `dim`={self.dim} "
                    f"floats. Received: {arg} of shape {value.shape}"
                )
            if not np.all(np.isfinite(value)) or (
                arg == "variance" and np.any(value <= 0)
            ):
                raise ValueError(
                    f"{owner}: `{arg}` must be finite (variance > 0). "
                    f"Received: {arg}={getattr(self, arg)}"
                )
            stored = (
                float(value[0])
                if self.dim == 1
                else tuple(
                    float(v) for v in np.broadcast_to(value, (self.dim,))
                )
            )
            object.__setattr__(self, arg, stored)

    @property
    def normalized(self) -> bool:
        return self.mean is not None


@dataclasses.dataclass(frozen=True)
class SequenceFeature:
    """A variable-length list of categorical ids, embedded and pooled.

    The raw input is `[batch, max_length]`, padded with `-1` (ids) or `""`
    (strings); padding is masked out of the pooling. Models that read a
    sequence step by step (attention, recurrent layers) get it unpooled as
    well, `[batch, max_length, D]` with its mask (see `FeatureEncoder`).

    Args:
        name: str. The column and input name.
        max_length: int. Longest list kept (longer lists are truncated by
            `kmtl.data`).
        vocabulary_size / vocabulary / hash_bins: as `CategoricalFeature`;
            leave all unset when `shared_with` is given.
        shared_with: str. Name of a `CategoricalFeature` whose embeddings
            this sequence reuses (e.g. clicked items with `item_id`).
        combiner: str. `"mean"` or `"sum"`. Defaults to `"mean"`.
        dtype: str. `"int64"` or `"string"`. Defaults like
            `CategoricalFeature` (or to the shared feature's dtype).
        group: str. A field-group tag. Defaults to `None`.
        step_of: str. Name of another `SequenceFeature` whose steps this one
            describes, position by position (the scenario or the action
            type of each event in a behaviour sequence): same `max_length`,
            padded at the same positions. Step-wise models concatenate its
            embeddings to that sequence's steps. Defaults to `None`.

    Example:

    >>> SequenceFeature("clicked", max_length=20, shared_with="item_id").kind
    'sequence'
    """

    name: str
    max_length: int
    vocabulary_size: int | None = None
    vocabulary: tuple[str, ...] | None = None
    hash_bins: int | None = None
    shared_with: str | None = None
    combiner: str = "mean"
    dtype: str | None = None
    group: str | None = None
    step_of: str | None = dataclasses.field(
        default=None, metadata=_OMIT_DEFAULT
    )
    kind: ClassVar[str] = "sequence"

    def __post_init__(self) -> None:
        _check_name("feature", self.name)
        owner = f"SequenceFeature {self.name!r}"
        _checked(self, "max_length", validation.positive_int, owner)
        if not isinstance(self.combiner, str) or self.combiner not in (
            "mean",
            "sum",
        ):
            raise ValueError(
                f"{owner}: `combiner` must be 'mean' or 'sum'. "
                f"Received: combiner={self.combiner!r}"
            )
        _checked(self, "shared_with", _optional_text, owner)
        _checked(self, "group", _optional_text, owner)
        _checked(self, "step_of", _optional_text, owner)
        ids = ("vocabulary_size", "vocabulary", "hash_bins")
        given = [a for a in ids if getattr(self, a) is not None]
        if self.shared_with is None and len(given) != 1:
            raise ValueError(
                f"{owner}: give exactly one of `vocabulary_size`, "
                "`vocabulary`, `hash_bins` or `shared_with`. "
                f"Received: {given or 'none'}"
            )
        if self.shared_with is None:
            ids = CategoricalFeature(
                self.name,
                vocabulary_size=self.vocabulary_size,
                vocabulary=self.vocabulary,
                hash_bins=self.hash_bins,
                dtype=self.dtype,
            )
            object.__setattr__(self, "vocabulary", ids.vocabulary)
            object.__setattr__(self, "dtype", ids.dtype)
        elif any(
            getattr(self, a) is not None
            for a in ("vocabulary_size", "vocabulary", "hash_bins")
        ):
            raise ValueError(
                f"{owner}: a sequence that shares embeddings "
                f"(shared_with={self.shared_with!r}) takes its vocabulary "
                "from that feature; do not give one."
            )

    @property
    def num_ids(self) -> int:
        return CategoricalFeature(
            self.name,
            vocabulary_size=self.vocabulary_size,
            vocabulary=self.vocabulary,
            hash_bins=self.hash_bins,
        ).num_ids


Feature = CategoricalFeature | NumericalFeature | SequenceFeature
FEATURE_CLASSES = {
    cls.kind: cls
    for cls in (CategoricalFeature, NumericalFeature, SequenceFeature)
}


@dataclasses.dataclass(frozen=True)
class ScenarioSpec:
    """The scenario (domain) column of a multi-scenario model.

    The column holds an integer scenario index in `[0, num_scenarios)`.
    It is a model input like any feature; ids outside the range are an error
    (at training in `kmtl.data`, at serving in the graph), never silent.

    A scenario hierarchy (country -> channel -> scenario) adds one integer
    column per coarser level, each with its own named values. Hierarchical
    models (AESM2) read the levels coarse to fine, then the scenario itself.

    Args:
        name: str. The column and input name.
        values: list of str. One name per scenario index (`values[i]` names
            scenario `i`); names the per-scenario signatures.
        levels: dict level column -> list of value names, coarse to fine
            (e.g. `{"country": ["us", "fr"]}`). Each level column holds ids
            in `[0, len(values))`. Defaults to none.

    Example:

    >>> s = ScenarioSpec("channel", ["home", "search"], {"country": ["us"]})
    >>> s.num_scenarios, s.level_names, s.level_sizes
    (2, ('country',), (1,))
    """

    name: str
    values: tuple[str, ...]
    levels: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def __post_init__(self) -> None:
        _check_name("scenario", self.name)
        object.__setattr__(
            self, "values", _check_values(self.name, self.values)
        )
        levels = self.levels
        if isinstance(levels, Mapping):
            levels = tuple(levels.items())
        if not isinstance(levels, (tuple, list)) or not all(
            isinstance(level, (tuple, list)) and len(level) == 2
            for level in levels
        ):
            raise ValueError(
                f"ScenarioSpec {self.name!r}: `levels` must map each level "
                "column to its list of value names, e.g. "
                f"{{'country': ['us', 'fr']}}. Received: levels={levels!r}"
            )
        checked = []
        for column, values in levels:
            _check_name("scenario `levels` column", column)
            checked.append((column, _check_values(column, values)))
        names = [self.name] + [column for column, _ in checked]
        if len(set(names)) != len(names):
            raise ValueError(
                f"ScenarioSpec {self.name!r}: the scenario and level column "
                f"names must be distinct. Received: {names}"
            )
        object.__setattr__(self, "levels", tuple(checked))

    @property
    def num_scenarios(self) -> int:
        return len(self.values)

    @property
    def level_names(self) -> tuple[str, ...]:
        """The hierarchy level columns, coarse to fine."""
        return tuple(column for column, _ in self.levels)

    @property
    def level_sizes(self) -> tuple[int, ...]:
        """Number of values of each level, coarse to fine."""
        return tuple(len(values) for _, values in self.levels)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "values": list(self.values)}
        if self.levels:
            out["levels"] = {c: list(v) for c, v in self.levels}
        return out


def _check_values(column: str, values: Any) -> tuple[str, ...]:
    """Validates the value names of a scenario column or level."""
    ok = (
        isinstance(values, (list, tuple, np.ndarray))
        and len(values)
        and all(isinstance(v, str) and _NAME.match(v) for v in values)
        and len(set(values)) == len(values)
    )
    if not ok:
        raise ValueError(
            f"ScenarioSpec column {column!r}: its values must be a non-empty "
            "list of distinct names, each a Python identifier (they name the "
            f"scenario signatures). Received: values={values!r}"
        )
    return tuple(str(v) for v in values)


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One prediction task: its label, loss, weight, sample space, metrics.

    Args:
        name: str. The task name; the model output and SavedModel output
            are named after it.
        label: str or list of str. The label column, or several columns
            whose product is the label (ESMM's CTCVR = click x conversion).
            Defaults to `name`.
        kind: str. `"binary"`, `"regression"` or `"multiclass"`. Defaults to
            `"binary"`.
        num_classes: int. Classes of a multiclass task. Defaults to `None`.
        loss: str. A Keras loss name; `None` picks the kind's default
            (binary cross-entropy, MSE, sparse categorical cross-entropy).
        weight: float. Loss weight; 0 trains no loss on this output.
            Defaults to 1.0.
        sample_space: str. Name of another binary task: this task's loss
            and metrics only count rows where that task's label is 1 (CVR
            trained on clicks). Defaults to `None` (every row).
        metrics: list of str. Keras metric names (`"auc"` becomes
            `keras.metrics.AUC`). `None` picks the kind's defaults.
        facets: dict facet -> value, e.g. `{"behaviour": "click",
            "user_group": "new"}`: what the task is about along each axis.
            Facet-aware models (`mfh`, `hmtl`) route tasks on them. Defaults
            to none.

    Example:

    >>> TaskSpec("cvr", label="purchase", sample_space="ctr").loss
    'binary_crossentropy'
    >>> TaskSpec("click_new", facets={"behaviour": "click"}).facet("behaviour")
    'click'
    """

    name: str
    label: str | tuple[str, ...] | None = None
    kind: str = "binary"
    num_classes: int | None = None
    loss: str | None = None
    weight: float = 1.0
    sample_space: str | None = None
    metrics: tuple[str, ...] | None = None
    facets: tuple[tuple[str, str], ...] = dataclasses.field(
        default=(), metadata=_OMIT_DEFAULT
    )

    def __post_init__(self) -> None:
        _check_name("task", self.name)
        owner = f"TaskSpec {self.name!r}"
        object.__setattr__(self, "facets", _check_facets(self.facets, owner))
        if not isinstance(self.kind, str) or self.kind not in TASK_KINDS:
            raise ValueError(
                f"{owner}: `kind` must be one of {TASK_KINDS}. "
                f"Received: kind={self.kind!r}"
            )
        label = self.name if self.label is None else self.label
        labels = (label,) if isinstance(label, str) else label
        if (
            not isinstance(labels, (list, tuple))
            or not labels
            or not all(isinstance(x, str) and x for x in labels)
        ):
            raise ValueError(
                f"{owner}: `label` must be a column name or a non-empty list "
                f"of them. Received: label={self.label!r}"
            )
        labels = tuple(labels)
        object.__setattr__(
            self, "label", labels[0] if len(labels) == 1 else labels
        )
        if self.kind == "multiclass":
            _checked(self, "num_classes", validation.positive_int, owner)
        elif self.num_classes is not None:
            raise ValueError(
                f"{owner}: `num_classes` is for multiclass tasks. "
                f"Received: num_classes={self.num_classes!r}, "
                f"kind={self.kind!r}"
            )
        _checked(self, "weight", validation.non_negative_float, owner)
        _checked(self, "loss", _optional_text, owner)
        object.__setattr__(self, "loss", self.loss or DEFAULT_LOSSES[self.kind])
        _checked(self, "sample_space", _optional_text, owner)
        metrics = (
            DEFAULT_METRICS[self.kind]
            if self.metrics is None
            else _checked(self, "metrics", validation.name_list, owner)
        )
        object.__setattr__(self, "metrics", tuple(metrics))
        if self.sample_space == self.name:
            raise ValueError(
                f"{owner}: a task cannot be its own sample space. "
                f"Received: sample_space={self.sample_space!r}"
            )

    @property
    def label_columns(self) -> tuple[str, ...]:
        """The label columns (one, or several multiplied together)."""
        return (self.label,) if isinstance(self.label, str) else self.label

    def facet(self, name: str) -> str | None:
        """The task's value on facet `name`, or `None` without one."""
        return dict(self.facets).get(name)

    def to_dict(self) -> dict[str, Any]:
        """The task as a JSON-ready dict (`TaskSpec.from_dict` reverses it)."""
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskSpec:
        """The task of a dict written by `to_dict` (or read from JSON).

        Raises:
            ValueError: a key is missing or unknown, or a value is invalid.
        """
        return _from_dict(cls, data, "the TaskSpec dict")


def _check_facets(facets: Any, owner: str) -> tuple[tuple[str, str], ...]:
    """Facets as sorted `(facet, value)` pairs: names for keys, non-empty
    strings for values."""
    pairs = facets.items() if isinstance(facets, Mapping) else facets
    try:
        pairs = tuple((k, v) for k, v in pairs)
    except (TypeError, ValueError):
        pairs = None
    if pairs is None or not all(
        isinstance(k, str)
        and _NAME.match(k)
        and isinstance(v, str)
        and v.strip()
        for k, v in pairs
    ):
        raise ValueError(
            f"{owner}: `facets` must map facet names (identifiers) to "
            "non-empty strings, e.g. {'behaviour': 'click', 'user_group': "
            f"'new'}}. Received: facets={facets!r}"
        )
    if len({k for k, _ in pairs}) != len(pairs):
        raise ValueError(
            f"{owner}: a facet appears twice. Received: facets={facets!r}"
        )
    return tuple(sorted(pairs))


def _to_dict(obj: Any) -> dict[str, Any]:
    out = {}
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        if value is None or (
            field.metadata.get("omit_default") and value == field.default
        ):
            continue
        if field.name == "facets":
            out[field.name] = dict(value)
            continue
        out[field.name] = list(value) if isinstance(value, tuple) else value
    return out


def _check_keys(
    data: Any, known: Iterable[str], required: Iterable[str], where: str
) -> None:
    """`data` is a dict with every required key and no unknown one."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{where} must be a dict. Received: {where}={data!r}")
    unknown = [k for k in data if k not in set(known)]
    if unknown:
        raise ValueError(
            f"Unknown key(s) {unknown} in {where}; expected some of "
            f"{sorted(known)}. Received: {where}={dict(data)!r}"
        )
    missing = [k for k in required if k not in data]
    if missing:
        raise ValueError(
            f"{where} lacks the required key(s) {missing}. "
            f"Received: {where}={dict(data)!r}"
        )


def _from_dict(cls: type, data: Any, where: str) -> Any:
    """Builds a spec dataclass from its dict (see `_to_dict`). A `kind`
    key that is not a field of `cls` names the feature class and is
    dropped."""
    fields = dataclasses.fields(cls)
    known = {f.name for f in fields}
    required = [
        f.name
        for f in fields
        if f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    extra = set() if "kind" in known else {"kind"}
    _check_keys(data, known | extra, required, where)
    return cls(**{k: v for k, v in data.items() if k not in extra})


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """Everything a model needs to know about its inputs and tasks.

    Args:
        features: list of `CategoricalFeature`, `NumericalFeature`,
            `SequenceFeature`. The model inputs, in order.
        tasks: list of `TaskSpec`. The outputs, in order.
        scenario: `ScenarioSpec`. The scenario column, if any. It is a model
            input too (and may also appear as a categorical feature to be
            embedded). Defaults to `None`.
        embedding_dim: int. Width of every field embedding. Defaults to 16.

    Example:

    >>> spec = FeatureSpec(
    ...     features=[CategoricalFeature("item", vocabulary_size=10)],
    ...     tasks=[TaskSpec("ctr", label="click")],
    ... )
    >>> spec.feature("item").num_ids
    11
    """

    features: tuple[Feature, ...]
    tasks: tuple[TaskSpec, ...]
    scenario: ScenarioSpec | None = None
    embedding_dim: int = 16

    def __post_init__(self) -> None:
        kinds = tuple(FEATURE_CLASSES.values())
        if not isinstance(self.features, (list, tuple)) or not all(
            isinstance(f, kinds) for f in self.features
        ):
            raise ValueError(
                "FeatureSpec: `features` must be a list of "
                "CategoricalFeature, NumericalFeature or SequenceFeature. "
                f"Received: features={self.features!r}"
            )
        if not self.features:
            raise ValueError("FeatureSpec: `features` is empty.")
        if (
            not isinstance(self.tasks, (list, tuple))
            or not self.tasks
            or not all(isinstance(t, TaskSpec) for t in self.tasks)
        ):
            raise ValueError(
                "FeatureSpec: `tasks` must be a non-empty list of TaskSpec. "
                f"Received: tasks={self.tasks!r}"
            )
        features = tuple(self.features)
        tasks = tuple(self.tasks)
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "tasks", tasks)
        _checked(self, "embedding_dim", validation.positive_int, "FeatureSpec")
        self._check_unique("feature", [f.name for f in features])
        self._check_unique("task", [t.name for t in tasks])
        names = {f.name for f in features}
        if self.scenario is not None:
            if not isinstance(self.scenario, ScenarioSpec):
                raise ValueError(
                    "FeatureSpec: `scenario` must be a ScenarioSpec. "
                    f"Received: scenario={self.scenario!r}"
                )
            clash = names & set(self.scenario.level_names)
            if clash:
                raise ValueError(
                    f"FeatureSpec: scenario level column(s) {sorted(clash)} "
                    "are also features; a level is an input of its own."
                )
        task_names = [t.name for t in tasks]
        for task in tasks:
            if task.sample_space is None:
                continue
            if task.sample_space not in task_names:
                raise ValueError(
                    f"Task {task.name!r} has sample_space="
                    f"{task.sample_space!r}, which is not a task of this "
                    f"spec. Expected one of the task names {task_names}."
                )
            if self.task(task.sample_space).kind != "binary":
                raise ValueError(
                    f"Task {task.name!r}: its sample space "
                    f"{task.sample_space!r} must be a binary task."
                )
        for f in features:
            if isinstance(f, SequenceFeature) and f.shared_with is not None:
                target = next(
                    (g for g in features if g.name == f.shared_with), None
                )
                if not isinstance(target, CategoricalFeature):
                    raise ValueError(
                        f"SequenceFeature {f.name!r}: shared_with="
                        f"{f.shared_with!r} must name a CategoricalFeature "
                        f"of this spec. Expected one of "
                        f"{self.names('categorical')}."
                    )
                if f.dtype not in (None, target.dtype):
                    raise ValueError(
                        f"SequenceFeature {f.name!r}: dtype {f.dtype!r} "
                        f"differs from {target.name!r}'s {target.dtype!r}."
                    )

        for f in features:
            if isinstance(f, SequenceFeature) and f.step_of is not None:
                target = next(
                    (g for g in features if g.name == f.step_of), None
                )
                if (
                    not isinstance(target, SequenceFeature)
                    or target.step_of is not None
                    or target.max_length != f.max_length
                ):
                    raise ValueError(
                        f"SequenceFeature {f.name!r}: step_of={f.step_of!r} "
                        "must name a SequenceFeature of this spec with the "
                        f"same max_length ({f.max_length}) that is not a "
                        "step feature itself. Expected one of "
                        f"{self.names('sequence')}."
                    )
        bias = [f.name for f in features if getattr(f, "bias", False)]
        if bias and len(bias) == len(features):
            raise ValueError(
                f"FeatureSpec: every feature is a bias feature ({bias}); a "
                "model needs at least one feature it serves with."
            )

    @staticmethod
    def _check_unique(what: str, names: list[str]) -> None:
        seen = set()
        for name in names:
            if name in seen:
                raise ValueError(
                    f"FeatureSpec: duplicate {what} name {name!r}; each "
                    f"{what} needs a distinct name."
                )
            seen.add(name)

    # --- look-ups ---------------------------------------------------------

    def names(self, kind: str | None = None) -> list[str]:
        """Feature names, optionally of one kind."""
        return [f.name for f in self.features if kind in (None, f.kind)]

    def feature(self, name: str) -> Feature:
        """The feature called `name` (a `ValueError` lists the known ones)."""
        for f in self.features:
            if f.name == name:
                return f
        raise ValueError(
            f"Unknown feature {name!r}. Expected one of {self.names()}."
        )

    def task(self, name: str) -> TaskSpec:
        """The task called `name` (a `ValueError` lists the known ones)."""
        for t in self.tasks:
            if t.name == name:
                return t
        raise ValueError(
            f"Unknown task {name!r}. Expected one of "
            f"{[t.name for t in self.tasks]}."
        )

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    @property
    def input_names(self) -> list[str]:
        """Raw input columns: features, then scenario columns not already
        among them."""
        names = self.names()
        if self.scenario is not None:
            for col in (self.scenario.name, *self.scenario.level_names):
                if col not in names:
                    names.append(col)
        return names

    @property
    def bias_names(self) -> list[str]:
        """The bias features: training inputs that serving never takes."""
        return [f.name for f in self.features if getattr(f, "bias", False)]

    @property
    def serving_input_names(self) -> list[str]:
        """`input_names` less the bias features: what a served model takes."""
        bias = set(self.bias_names)
        return [n for n in self.input_names if n not in bias]

    def step_features(self, sequence: str) -> list[str]:
        """The sequences that describe `sequence`'s steps (`step_of`)."""
        return [
            f.name
            for f in self.features
            if isinstance(f, SequenceFeature) and f.step_of == sequence
        ]

    def facet_values(self, facet: str) -> list[str]:
        """The distinct values of a task facet, in task order."""
        values = [t.facet(facet) for t in self.tasks]
        return list(dict.fromkeys(v for v in values if v is not None))

    def replace(self, **changes: Any) -> FeatureSpec:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # --- serialisation ----------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "features": [
                {"kind": f.kind, **_to_dict(f)} for f in self.features
            ],
            "tasks": [_to_dict(t) for t in self.tasks],
            "embedding_dim": self.embedding_dim,
        }
        if self.scenario is not None:
            out["scenario"] = self.scenario.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        """The spec of a dict written by `to_dict` (or read from JSON).

        Args:
            data: dict with `features`, `tasks` and optionally `scenario`
                and `embedding_dim`.

        Returns:
            A `FeatureSpec`.

        Raises:
            ValueError: a key is missing or unknown, or a value is invalid;
                the message names the field.
        """
        _check_keys(
            data,
            ("features", "tasks", "scenario", "embedding_dim"),
            ("features", "tasks"),
            "the FeatureSpec dict",
        )
        for key in ("features", "tasks"):
            if not isinstance(data[key], (list, tuple)):
                raise ValueError(
                    f"FeatureSpec: `{key}` must be a list of dicts. "
                    f"Received: {key}={data[key]!r}"
                )
        features = []
        for i, item in enumerate(data["features"]):
            where = f"features[{i}]"
            kind = item.get("kind") if isinstance(item, Mapping) else None
            if not isinstance(kind, str) or kind not in FEATURE_CLASSES:
                raise ValueError(
                    f"`{where}` must be a feature dict whose `kind` is one "
                    f"of {sorted(FEATURE_CLASSES)}. Received: {where}={item!r}"
                )
            features.append(_from_dict(FEATURE_CLASSES[kind], item, where))
        tasks = [
            _from_dict(TaskSpec, t, f"tasks[{i}]")
            for i, t in enumerate(data["tasks"])
        ]
        scenario = data.get("scenario")
        return cls(
            features=features,
            tasks=tasks,
            scenario=None
            if scenario is None
            else _from_dict(ScenarioSpec, scenario, "scenario"),
            embedding_dim=data.get("embedding_dim", 16),
        )

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, text: str) -> FeatureSpec:
        return cls.from_dict(json.loads(text))

    # --- inference from data ----------------------------------------------

    @classmethod
    def from_dataframe(
        cls,
        df: Any,
        labels: Mapping[str, str | Sequence[str]] | Sequence[str],
        scenario: str | None = None,
        *,
        scenario_values: Sequence[str] | None = None,
        sample_spaces: Mapping[str, str] | None = None,
        exclude: Iterable[str] = (),
        max_vocabulary: int = 10_000,
        embedding_dim: int = 16,
        groups: Mapping[str, str] | None = None,
        bias: Iterable[str] = (),
    ) -> FeatureSpec:
        """Infers features, vocabularies and normalisation from a DataFrame.

        Float columns become normalised `NumericalFeature`s (mean and
        variance of the finite values: NaN and inf are missing values, which
        the encoder fills). Integer and string columns become
        `CategoricalFeature`s: integer ids keep `vocabulary_size = max + 1`,
        unless the ids are sparse (see below); strings get their sorted
        vocabulary of present values (missing values and `""` are left out:
        they map to the OOV bucket), or hashing into `2 * max_vocabulary`
        bins past `max_vocabulary` distinct values. List-valued columns
        become `SequenceFeature`s. Label columns and `exclude` are left out.

        Sparse integer ids (64-bit hashed ids, or one huge id among small
        ones) would need an embedding row per possible id, so they are
        hashed into `2 * max_vocabulary` bins instead when the largest id is
        `>= 2**31` (past what an int32 row index addresses), or when
        `max + 1` exceeds both `1_000_000` and 100 times the number of
        distinct ids.

        Args:
            df: pandas.DataFrame. The training data.
            labels: dict task -> label column(s), or a list of label columns
                (each one a binary task of the same name).
            scenario: str. The scenario column (integer ids). It also stays
                a categorical feature. Defaults to `None`.
            scenario_values: list of str. Names of the scenario ids (they
                name the per-scenario signatures). Defaults to `s0`, `s1`...
            sample_spaces: dict task -> task whose positives are its
                sample space. Defaults to none.
            exclude: columns to ignore.
            max_vocabulary: int. Past this many distinct strings, hash;
                sparse integer ids hash into twice as many bins.
                Defaults to 10,000.
            embedding_dim: int. Field embedding width. Defaults to 16.
            groups: dict column -> group tag. Defaults to none.
            bias: columns that are bias features (`bias=True`: display
                position, device), training inputs only. Defaults to none.

        Returns:
            A `FeatureSpec`.

        Raises:
            ValueError: the DataFrame is empty, a named column is missing,
                or a column cannot be a feature; the message names it.
        """
        import pandas as pd

        if len(df) == 0:
            raise ValueError(
                "FeatureSpec.from_dataframe: the DataFrame is empty; "
                "vocabularies and statistics need at least one row. "
                f"Received: a DataFrame of 0 rows, columns {list(df.columns)}"
            )
        if isinstance(labels, Mapping):
            label_map = dict(labels)
        else:
            label_map = {name: name for name in labels}
        label_cols = set()
        for task, cols in label_map.items():
            cols = (cols,) if isinstance(cols, str) else tuple(cols)
            for col in cols:
                if col not in df.columns:
                    raise ValueError(
                        f"Label column {col!r} of task {task!r} is not in "
                        f"the DataFrame. Expected one of {list(df.columns)}."
                    )
            label_cols.update(cols)
        bias = tuple(bias)
        for col in (scenario, *exclude, *bias):
            if col is not None and col not in df.columns:
                raise ValueError(
                    f"Column {col!r} is not in the DataFrame. Expected one "
                    f"of {list(df.columns)}."
                )
        groups = dict(groups or {})
        features: list[Feature] = []
        skip = label_cols | set(exclude)
        for col in df.columns:
            if col in skip:
                continue
            series = df[col]
            group = groups.get(col)
            if pd.api.types.is_bool_dtype(series) or (
                pd.api.types.is_integer_dtype(series)
            ):
                if series.min() < 0:
                    raise ValueError(
                        f"Column {col!r} holds negative integers; integer "
                        "categorical ids must be >= 0 (or cast it to float "
                        "for a numerical feature). "
                        f"Received: column={col!r}, min={series.min()}"
                    )
                features.append(
                    CategoricalFeature(
                        col,
                        **_infer_int_ids(
                            series.dropna().to_numpy("int64"), max_vocabulary
                        ),
                        group=group,
                    )
                )
            elif pd.api.types.is_float_dtype(series):
                values = series.to_numpy("float64", na_value=np.nan)
                values = values[np.isfinite(values)]
                mean = float(values.mean()) if len(values) else 0.0
                var = float(values.var()) if len(values) else 1.0
                features.append(
                    NumericalFeature(
                        col,
                        mean=mean,
                        variance=var if 0 < var < math.inf else 1.0,
                        group=group,
                    )
                )
            else:
                sample = series.dropna()
                first = sample.iloc[0] if len(sample) else ""
                if isinstance(first, (list, tuple, np.ndarray)):
                    features.append(
                        _infer_sequence(col, sample, max_vocabulary, group)
                    )
                else:
                    features.append(
                        _infer_strings(col, sample, max_vocabulary, group)
                    )
        for i, feature in enumerate(features):
            if feature.name not in bias:
                continue
            if isinstance(feature, SequenceFeature):
                raise ValueError(
                    f"Column {feature.name!r} cannot be a bias feature: it "
                    "holds lists; a bias feature is one categorical or "
                    "numerical value per row."
                )
            features[i] = dataclasses.replace(feature, bias=True)
        scenario_spec = None
        if scenario is not None:
            ids = df[scenario]
            if not pd.api.types.is_integer_dtype(ids) or ids.min() < 0:
                raise ValueError(
                    f"Scenario column {scenario!r} must hold integer ids "
                    f">= 0. Received dtype {ids.dtype}."
                )
            scenario_spec = ScenarioSpec(
                scenario,
                values=scenario_values
                or [f"s{i}" for i in range(int(ids.max()) + 1)],
            )
        spaces = dict(sample_spaces or {})
        tasks = [
            TaskSpec(
                name,
                label=cols,
                sample_space=spaces.get(name),
            )
            for name, cols in label_map.items()
        ]
        return cls(
            features=features,
            tasks=tasks,
            scenario=scenario_spec,
            embedding_dim=embedding_dim,
        )


SPARSE_ID_MIN = 2**31
SPARSE_ID_ROWS = 1_000_000
SPARSE_ID_RATIO = 100


def _infer_int_ids(ids: Any, max_vocabulary: int) -> dict[str, int]:
    """`vocabulary_size` for dense integer ids; `hash_bins` for sparse ones
    (see `FeatureSpec.from_dataframe`)."""
    ids = np.asarray(ids)
    if not len(ids):
        return {"vocabulary_size": 1}
    top = int(ids.max())
    sparse = top >= SPARSE_ID_MIN or (
        top + 1 > SPARSE_ID_ROWS
        and top + 1 > SPARSE_ID_RATIO * len(np.unique(ids))
    )
    if sparse:
        return {"hash_bins": 2 * max_vocabulary}
    return {"vocabulary_size": top + 1}


def _infer_strings(
    col: str, sample: Any, max_vocabulary: int, group: str | None
) -> CategoricalFeature:
    # `sample` holds no missing value; "" is the missing value kmtl.data
    # writes, so it stays out of the vocabulary (it maps to the OOV bucket).
    values = sorted({str(v) for v in sample.unique()} - {""})
    if len(values) > max_vocabulary:
        return CategoricalFeature(
            col, hash_bins=2 * max_vocabulary, dtype="string", group=group
        )
    if not values:  # every value missing: one bin for all
        return CategoricalFeature(col, hash_bins=1, dtype="string", group=group)
    return CategoricalFeature(col, vocabulary=values, group=group)


def _infer_sequence(
    col: str, sample: Any, max_vocabulary: int, group: str | None
) -> Any:
    lengths = sample.map(len)
    flat = [v for seq in sample for v in seq]
    max_length = max(1, int(lengths.max()))
    if flat and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool)
        for v in flat
    ):
        ids = np.asarray(flat)
        return SequenceFeature(
            col,
            max_length=max_length,
            **_infer_int_ids(ids[ids >= 0], max_vocabulary),
            group=group,
        )
    vocab = sorted(
        {str(v) for v in flat if not _is_missing(v)} - {SEQUENCE_STRING_PAD}
    ) or ["?"]
    return SequenceFeature(
        col, max_length=max_length, vocabulary=vocab, group=group
    )


def _is_missing(value: Any) -> bool:
    """`None` or a float NaN (what pandas holds for a missing value)."""
    return value is None or (isinstance(value, float) and math.isnan(value))

"""Property tests of the spec dataclasses: every valid spec survives dict and
JSON round trips, and malformed dicts fail with a `ValueError` naming the
field.

`HYPOTHESIS_PROFILE=slow` runs many more examples.
"""

import dataclasses
import json
import os
import string

from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from kmtl.features.spec import DEFAULT_LOSSES
from kmtl.features.spec import CategoricalFeature
from kmtl.features.spec import FeatureSpec
from kmtl.features.spec import NumericalFeature
from kmtl.features.spec import ScenarioSpec
from kmtl.features.spec import SequenceFeature
from kmtl.features.spec import TaskSpec

# No example database: every run draws afresh (CI keeps no state).
for _profile, _examples in (("fast", 200), ("slow", 5000)):
    settings.register_profile(
        _profile,
        max_examples=_examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))

NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True)
GROUP = st.none() | st.sampled_from(["user", "item", "context", "domain"])
FLOAT = st.floats(allow_nan=False, allow_infinity=False, width=64)
POSITIVE = st.floats(
    min_value=0.0, exclude_min=True, allow_infinity=False, width=64
)
METRICS = ["auc", "pr_auc", "logloss", "accuracy", "mae", "mse"]


def _vocabulary(min_size=1):
    return st.lists(st.text(max_size=5), min_size=min_size, max_size=6).map(
        lambda v: list(dict.fromkeys(v))
    )


def _ids(draw, dtype):
    """Exactly one of vocabulary_size / vocabulary / hash_bins."""
    way = draw(st.sampled_from(["size", "vocab", "hash"]))
    if dtype == "string" and way == "size":
        way = "vocab"
    if dtype == "int64" and way == "vocab":
        way = "size"
    if way == "size":
        return {"vocabulary_size": draw(st.integers(1, 10**12))}
    if way == "vocab":
        return {"vocabulary": tuple(draw(_vocabulary()))}
    return {"hash_bins": draw(st.integers(1, 10**6))}


@st.composite
def features(draw, name, categoricals):
    kind = draw(st.sampled_from(["categorical", "numerical", "sequence"]))
    group = draw(GROUP)
    if kind == "categorical":
        dtype = draw(st.sampled_from(["int64", "string"]))
        return CategoricalFeature(
            name,
            dtype=dtype,
            group=group,
            bias=draw(st.booleans()),
            **_ids(draw, dtype),
        )
    if kind == "numerical":
        dim = draw(st.integers(1, 4))
        stats = {}
        if draw(st.booleans()):
            size = draw(st.sampled_from([1, dim]))
            if size == 1:
                stats = {"mean": draw(FLOAT), "variance": draw(POSITIVE)}
            else:
                stats = {
                    "mean": draw(st.lists(FLOAT, min_size=dim, max_size=dim)),
                    "variance": draw(
                        st.lists(POSITIVE, min_size=dim, max_size=dim)
                    ),
                }
        return NumericalFeature(
            name, dim=dim, group=group, bias=draw(st.booleans()), **stats
        )
    common = dict(
        max_length=draw(st.integers(1, 50)),
        combiner=draw(st.sampled_from(["mean", "sum"])),
        group=group,
    )
    if categoricals and draw(st.booleans()):
        return SequenceFeature(
            name, shared_with=draw(st.sampled_from(categoricals)), **common
        )
    dtype = draw(st.sampled_from(["int64", "string"]))
    return SequenceFeature(name, dtype=dtype, **common, **_ids(draw, dtype))


def _with_step_features(draw, feats):
    """Some sequences become step features of an earlier sequence of the
    same length."""
    out = []
    for f in feats:
        heads = [
            g.name
            for g in out
            if isinstance(g, SequenceFeature)
            and g.step_of is None
            and g.max_length == getattr(f, "max_length", None)
        ]
        if isinstance(f, SequenceFeature) and heads and draw(st.booleans()):
            f = dataclasses.replace(f, step_of=draw(st.sampled_from(heads)))
        out.append(f)
    if all(getattr(f, "bias", False) for f in out):
        out[0] = dataclasses.replace(out[0], bias=False)
    return out


@st.composite
def tasks(draw, names):
    out = []
    for name in names:
        kind = draw(st.sampled_from(["binary", "regression", "multiclass"]))
        label = draw(
            st.none() | NAME | st.lists(NAME, min_size=2, max_size=3).map(tuple)
        )
        binary = [t.name for t in out if t.kind == "binary"]
        out.append(
            TaskSpec(
                name,
                label=label,
                kind=kind,
                num_classes=draw(st.integers(1, 100))
                if kind == "multiclass"
                else None,
                loss=draw(st.none() | st.sampled_from(list(DEFAULT_LOSSES))),
                weight=draw(
                    st.floats(min_value=0, allow_infinity=False, width=64)
                ),
                sample_space=draw(st.none() | st.sampled_from(binary))
                if binary
                else None,
                metrics=draw(
                    st.none()
                    | st.lists(st.sampled_from(METRICS), max_size=3).map(tuple)
                ),
                facets=draw(st.dictionaries(NAME, NAME, max_size=2)),
            )
        )
    return out


@st.composite
def specs(draw):
    names = draw(st.lists(NAME, min_size=1, max_size=6, unique=True))
    feats = []
    for name in names:
        categoricals = [
            f.name for f in feats if isinstance(f, CategoricalFeature)
        ]
        feats.append(draw(features(name, categoricals)))
    task_names = draw(st.lists(NAME, min_size=1, max_size=4, unique=True))
    scenario = None
    if draw(st.booleans()):
        columns = draw(
            st.lists(
                NAME.filter(lambda n: n not in names),
                max_size=3,
                unique=True,
            )
        )
        column = draw(NAME)
        columns = [c for c in columns if c != column]
        values = st.lists(NAME, min_size=1, max_size=4, unique=True)
        scenario = ScenarioSpec(
            column,
            values=draw(values),
            levels={c: draw(values) for c in columns},
        )
    return FeatureSpec(
        features=_with_step_features(draw, feats),
        tasks=draw(tasks(task_names)),
        scenario=scenario,
        embedding_dim=draw(st.integers(1, 512)),
    )


@given(specs())
def test_every_valid_spec_survives_dict_and_json(spec):
    assert FeatureSpec.from_dict(spec.to_dict()) == spec
    text = spec.to_json()
    again = FeatureSpec.from_json(text)
    assert again == spec
    assert again.to_json() == text
    # What a file holds (load_spec) is JSON: no tuples, no NaN.
    assert FeatureSpec.from_dict(json.loads(text)) == spec
    for task in spec.tasks:  # a model's config holds its tasks alone
        assert (
            TaskSpec.from_dict(json.loads(json.dumps(task.to_dict()))) == task
        )


# --- malformed dicts ----------------------------------------------------

GARBAGE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
UNKNOWN_KEY = st.text(string.ascii_lowercase, min_size=12, max_size=14)


def _paths(node, prefix=()):
    """Every (path, value) of a nested dict/list."""
    yield prefix, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*prefix, i))


def _field(path):
    """The field a path points into: its last dict key."""
    keys = [p for p in path if isinstance(p, str)]
    return keys[-1] if keys else None


def _set(data, path, value):
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


@st.composite
def malformed(draw):
    """A spec dict with one mutation, and the field it touches."""
    data = draw(specs()).to_dict()
    paths = [p for p, _ in _paths(data)]
    path = draw(st.sampled_from(paths))
    action = draw(st.sampled_from(["replace", "delete", "add"]))
    if not path:  # the whole dict
        return draw(GARBAGE.filter(lambda g: not isinstance(g, dict))), None
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    if action == "delete" and isinstance(parent, dict):
        del parent[path[-1]]
        return data, _field(path)
    if action == "add" and isinstance(parent, dict):
        key = draw(UNKNOWN_KEY)
        parent[key] = draw(GARBAGE)
        return data, key
    _set(data, path, draw(GARBAGE))
    return data, _field(path)


def classify(data, field):
    """`"accepted"`, `"clear"` (a ValueError naming the field) or a label of
    the unclear failure."""
    try:
        spec = FeatureSpec.from_dict(data)
    except ValueError as error:
        message = str(error)
        if field is None or field in message:
            return "clear"
        return f"ValueError not naming {field!r}: {message[:120]}"
    except Exception as error:  # what the fuzzing looks for
        return f"{type(error).__name__}: {str(error)[:120]}"
    assert FeatureSpec.from_json(spec.to_json()) == spec
    return "accepted"


@settings(
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
@given(malformed())
def test_malformed_dicts_fail_with_a_value_error_naming_the_field(case):
    data, field = case
    assert classify(data, field) in ("accepted", "clear")

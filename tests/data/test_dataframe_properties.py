"""Property tests of messy DataFrames and random hparams: every outcome is
a finite prediction or a ValueError that names what is wrong."""

import math

import keras
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import kmtl
from kmtl.testing import raw_tensors

ROWS = 8
FAST = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

_strings = st.one_of(
    st.none(),
    st.just(float("nan")),
    st.text(max_size=6),  # unicode, the empty string included
    st.sampled_from(["home", "search"]),
)
_ids = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, 1, 2, 2**31, 2**32 + 3, -1]),
)
_floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from([0.0, 1.5, -3.0]),
)


@pytest.fixture(scope="module")
def served():
    """A small model trained on clean data; the properties feed it mess."""
    rng = np.random.default_rng(0)
    clean = pd.DataFrame(
        {
            "city": rng.choice(["paris", "rome", "oslo"], 400).astype(object),
            "item": rng.integers(0, 50, 400),
            "price": rng.normal(size=400),
            "click": rng.integers(0, 2, 400).astype(float),
        }
    )
    spec = kmtl.FeatureSpec.from_dataframe(
        clean, labels={"ctr": "click"}, embedding_dim=4
    )
    keras.utils.set_random_seed(0)
    model = kmtl.build("shared_bottom", spec, bottom_units=(8,))
    model.fit(kmtl.data.to_dataset(clean, spec), epochs=1, verbose=0)
    return spec, model


@FAST
@given(
    city=st.lists(_strings, min_size=ROWS, max_size=ROWS),
    item=st.lists(_ids, min_size=ROWS, max_size=ROWS),
    price=st.lists(_floats, min_size=ROWS, max_size=ROWS),
)
def test_messy_rows_predict_finite_probabilities(served, city, item, price):
    spec, model = served
    df = pd.DataFrame(
        {
            "city": pd.Series(city, dtype=object),
            "item": pd.Series(item, dtype="int64"),
            "price": pd.Series(price, dtype="float64"),
        }
    )
    out = model.predict_on_batch(raw_tensors(df, spec))["ctr"]
    assert out.shape == (ROWS, 1)
    assert np.all(np.isfinite(out)) and np.all((out >= 0) & (out <= 1))


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.lists(st.integers(min_value=-2, max_value=9), max_size=3),
)


@settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_random_hparams_build_or_raise_a_named_error(served, data):
    spec, _ = served
    name = data.draw(st.sampled_from(["mmoe", "ple", "dcn", "aitm", "esmm"]))
    defaults = kmtl.models.registry.get_model_entry(name).hparams
    key = data.draw(st.sampled_from(sorted(defaults)))
    value = data.draw(_values)
    try:
        kmtl.build(name, spec, compile=False, **{key: value})
    except ValueError as error:
        message = str(error)
        assert name in message, message
        # The message names the hparam, or (for a rule against the spec)
        # what the spec lacks.
        assert key in message or "task" in message, message
    else:
        if isinstance(value, float):
            assert math.isfinite(value)

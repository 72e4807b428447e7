"""Property test of served requests: whatever a request holds, the served
graph answers finite predictions or an InvalidArgument naming the input."""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from kmtl.export import synthetic_rows

MUTATIONS = ("none", "extreme", "rank", "batch", "width")


@pytest.fixture(scope="module")
def serve(kmtl_exported):
    return tf.saved_model.load(str(kmtl_exported)).signatures["serving_default"]


# Values real logs hold, by dtype kind: huge and negative ids, NaN/inf
# floats (strings draw empty and unicode texts).
_POOLS = {
    "i": [-1, 0, 2**31, 2**32 + 3, 2**62],
    "f": [np.nan, np.inf, -np.inf, 1e30, 0.0],
}


def _extreme(value, draw):
    """Extreme values of the same dtype and shape."""
    pool = _POOLS.get("i" if value.dtype.kind in "iu" else value.dtype.kind)
    element = st.text(max_size=5) if pool is None else st.sampled_from(pool)
    drawn = draw(st.lists(element, min_size=value.size, max_size=value.size))
    dtype = object if pool is None else value.dtype
    return np.asarray(drawn, dtype=dtype).reshape(value.shape)


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_a_request_is_answered_or_refused_naming_the_input(
    serve, kmtl_spec, data
):
    rows = synthetic_rows(kmtl_spec, data.draw(st.integers(1, 6)), seed=1)
    name = data.draw(st.sampled_from(sorted(rows)))
    mutation = data.draw(st.sampled_from(MUTATIONS))
    value = rows[name]
    if mutation == "extreme":
        rows[name] = _extreme(value, data.draw)
    elif mutation == "rank":
        rows[name] = value[..., None]
    elif mutation == "batch":
        rows[name] = np.concatenate([value, value[:1]])
    elif mutation == "width" and value.ndim == 2 and value.shape[1] > 1:
        rows[name] = value[:, :-1]
    else:
        mutation = "none"
    try:
        out = serve(**{k: tf.constant(v) for k, v in rows.items()})
    except tf.errors.InvalidArgumentError as error:
        # Shapes are refused; out-of-range scenario ids too (never served as
        # another scenario); every other value is served (OOV, filled NaN).
        scenario = mutation == "extreme" and name == kmtl_spec.scenario.name
        assert mutation in ("rank", "batch", "width") or scenario, error
        assert name in error.message, error.message
        return
    assert not (
        mutation == "extreme"
        and name == kmtl_spec.scenario.name
        and np.any(
            (rows[name] < 0) | (rows[name] >= kmtl_spec.scenario.num_scenarios)
        )
    ), "bad scenario served"
    assert mutation in ("none", "extreme"), f"{mutation} of {name} served"
    for task, prediction in out.items():
        assert np.all(np.isfinite(prediction.numpy())), (task, name)

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


def _extreme(value, draw):
    """Same dtype and shape, values real logs hold: huge and negative ids,
    NaN/inf floats, empty and unicode strings."""
    if value.dtype.kind in "iu":
        pool = [-1, 0, 2**31, 2**32 + 3, 2**62]
        return np.asarray(
            draw(
                st.lists(
                    st.sampled_from(pool),
                    min_size=value.size,
                    max_size=value.size,
                )
            ),  # fmt: skip
            dtype=value.dtype,
        ).reshape(value.shape)
    if value.dtype.kind == "f":
        pool = [np.nan, np.inf, -np.inf, 1e30, 0.0]
        return np.asarray(
            draw(
                st.lists(
                    st.sampled_from(pool),
                    min_size=value.size,
                    max_size=value.size,
                )
            ),  # fmt: skip
            dtype=value.dtype,
        ).reshape(value.shape)
    texts = draw(
        st.lists(st.text(max_size=5), min_size=value.size, max_size=value.size)
    )
    return np.asarray(texts, dtype=object).reshape(value.shape)


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

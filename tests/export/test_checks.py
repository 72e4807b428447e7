"""Bad requests to the raw-feature signatures: the graph names the input
(rank, trailing shape, batch sizes); a wrong dtype, which TF refuses at the
signature boundary, is named by kmtl's own request helpers."""

import numpy as np
import pytest
import tensorflow as tf

from kmtl.export import check_inputs
from kmtl.export import predict_request
from kmtl.export import serving_input_signature
from kmtl.export import signature_inputs
from kmtl.export import synthetic_rows
from tests.export.session_loader import SessionModel
from tests.export.tiny_model import assert_same
from tests.export.tiny_model import predict


@pytest.fixture(scope="module")
def session(kmtl_exported):
    loaded = SessionModel(kmtl_exported)
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def loaded(kmtl_exported):
    return tf.saved_model.load(str(kmtl_exported))


def _bad(rows, change):
    rows = {name: value.copy() for name, value in rows.items()}
    if change == "rank":  # an id column of shape [batch, 1]
        rows["user_id"] = rows["user_id"][:, None]
    elif change == "scalar":
        rows["price"] = rows["price"][0]
    elif change == "width":
        rows["dense"] = rows["dense"][:, :2]
    elif change == "batch":
        rows["country"] = rows["country"][:3]
    return rows


MESSAGES = {
    "rank": r"input user_id must have shape \[batch\] \(int64\); "
    r"received shape\] \[4 1\]",
    "scalar": r"input price must have shape \[batch\] \(float32\); "
    r"received shape\] \[\]",
    "width": r"input dense must have shape \[batch, 3\] \(float32\); "
    r"received shape\] \[4 2\]",
    "batch": r"inputs user_id and country must have the same batch "
    r"size; received\] \[4\] \[and\] \[3\]",
}


@pytest.mark.parametrize("change", sorted(MESSAGES))
def test_bad_shapes_name_the_input_in_a_session(kmtl_spec, session, change):
    rows = _bad(synthetic_rows(kmtl_spec, 4, seed=1), change)
    match = "Signature serving_default: " + MESSAGES[change]
    with pytest.raises(tf.errors.InvalidArgumentError, match=match):
        session.run_as_served("serving_default", rows)


@pytest.mark.parametrize("change", sorted(MESSAGES))
def test_bad_shapes_name_the_input_when_loaded(kmtl_spec, loaded, change):
    rows = _bad(synthetic_rows(kmtl_spec, 4, seed=1), change)
    served = loaded.signatures["serving_default"]
    match = "Signature serving_default: " + MESSAGES[change]
    with pytest.raises(tf.errors.InvalidArgumentError, match=match):
        served(**{name: tf.constant(value) for name, value in rows.items()})


def test_scenario_signature_checks_its_inputs(kmtl_spec, session, loaded):
    rows = _bad(synthetic_rows(kmtl_spec, 4, seed=2), "batch")
    del rows["scenario"]
    match = (
        "Signature scenario_home: inputs user_id and country must have the "
        "same batch size"
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match=match):
        session.run_as_served("scenario_home", rows)
    served = loaded.signatures["scenario_home"]
    with pytest.raises(tf.errors.InvalidArgumentError, match=match):
        served(**{name: tf.constant(value) for name, value in rows.items()})


def test_checked_signatures_still_match_keras(kmtl_model, kmtl_spec, session):
    for rows in (1, 5):
        features = synthetic_rows(kmtl_spec, rows, seed=3)
        served = session.run_as_served("serving_default", features)
        assert_same(served, predict(kmtl_model, features))


def test_wrong_dtype_is_refused_at_the_boundary(kmtl_spec, loaded):
    """What TF itself does (and no graph can change): the eager signature
    names the input by position only. `check_inputs` names the feature."""
    rows = synthetic_rows(kmtl_spec, 4, seed=4)
    rows["user_id"] = rows["user_id"].astype("int32")
    served = loaded.signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="zero-based"):
        served(**{name: tf.constant(value) for name, value in rows.items()})


def test_check_inputs_names_the_feature_and_converts(
    kmtl_model, kmtl_spec, kmtl_exported, loaded
):
    signature = signature_inputs(kmtl_exported)
    rows = synthetic_rows(kmtl_spec, 4, seed=4)
    as_sent = dict(rows)
    as_sent["user_id"] = rows["user_id"].astype("int32")
    as_sent["price"] = rows["price"].astype("float64")
    as_sent["country"] = rows["country"].astype(str)
    checked = check_inputs(as_sent, signature)
    assert checked["user_id"].dtype == np.int64
    assert checked["price"].dtype == np.float32
    served = loaded.signatures["serving_default"](
        **{name: tf.constant(value) for name, value in checked.items()}
    )
    assert_same(
        {k: v.numpy() for k, v in served.items()}, predict(kmtl_model, rows)
    )

    floats = {**rows, "user_id": rows["user_id"].astype("float64")}
    with pytest.raises(
        ValueError, match=r"features\['user_id'\]` has dtype float64.*int64"
    ):
        check_inputs(floats, signature)
    text = {**rows, "price": rows["price"].astype(str)}
    with pytest.raises(ValueError, match=r"features\['price'\]`.*float32"):
        check_inputs(text, signature)
    nan = {**rows, "country": np.array(["us", np.nan, "fr", "de"], object)}
    with pytest.raises(ValueError, match=r"features\['country'\]`.*string"):
        check_inputs(nan, signature)
    rank = {**rows, "user_id": rows["user_id"][:, None]}
    with pytest.raises(ValueError, match=r"features\['user_id'\]` has shape"):
        check_inputs(rank, signature)
    short = {**rows, "dense": rows["dense"][:3]}
    with pytest.raises(ValueError, match=r"same batch size.*'dense': 3"):
        check_inputs(short, signature)


def test_check_inputs_refuses_integers_that_do_not_fit():
    signature = {"id": tf.TensorSpec([None], tf.int32, name="id")}
    ids = np.array([1, 2**40], dtype="int64")
    with pytest.raises(ValueError, match=r"features\['id'\].*outside.*int32"):
        check_inputs({"id": ids}, signature)
    assert check_inputs({"id": ids[:1]}, signature)["id"].dtype == np.int32


def test_signature_inputs_read_the_signature_defs(
    kmtl_model, kmtl_exported, loaded
):
    assert signature_inputs(kmtl_exported) == serving_input_signature(
        kmtl_model
    )
    for name, function in loaded.signatures.items():
        assert (
            signature_inputs(kmtl_exported, name)
            == (function.structured_input_signature[1])
        )
    with pytest.raises(ValueError, match="no signature 'nope'.*'examples'"):
        signature_inputs(kmtl_exported, "nope")


def test_predict_request_checks_against_the_signature(kmtl_spec, kmtl_exported):
    signature = signature_inputs(kmtl_exported)
    rows = synthetic_rows(kmtl_spec, 2, seed=5)
    rows["user_id"] = rows["user_id"].astype("int32")
    unchecked = predict_request("tiny", "serving_default", rows)
    assert tf.as_dtype(unchecked.inputs["user_id"].dtype) == tf.int32
    request = predict_request(
        "tiny", "serving_default", rows, input_signature=signature
    )
    assert tf.as_dtype(request.inputs["user_id"].dtype) == tf.int64
    rows["user_id"] = rows["user_id"].astype("float32")
    with pytest.raises(ValueError, match=r"inputs\['user_id'\]`.*float32"):
        predict_request(
            "tiny", "serving_default", rows, input_signature=signature
        )

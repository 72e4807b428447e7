"""The warmup file: PredictionLogs of every signature, built from the
export sample, replayed through the session loader as TF Serving does."""

import numpy as np
import tensorflow as tf

from kmtl.export import endpoints
from kmtl.export import read_warmup
from kmtl.export import serving_input_signature
from tests.export.session_loader import SessionModel
from tests.export.tiny_model import SCENARIOS
from tests.export.tiny_model import assert_same
from tests.export.tiny_model import predict


def test_warmup_holds_two_requests_per_signature(kmtl_exported):
    logs = read_warmup(kmtl_exported)
    requests = [log.predict_log.request for log in logs]
    names = [f"scenario_{value}" for value in SCENARIOS]
    expected = ["serving_default", *names, "examples"]
    assert [r.model_spec.signature_name for r in requests] == [
        name for name in expected for _ in range(2)
    ]
    assert {r.model_spec.name for r in requests} == {"tiny"}
    batch_sizes = [
        tf.make_ndarray(next(iter(r.inputs.values()))).shape[0]
        for r in requests
    ]
    assert batch_sizes == [1, 8] * len(expected)
    default = requests[1]
    assert sorted(default.inputs) == sorted(
        ["user_id", "country", "query", "scenario"]
        + ["price", "dense", "clicked", "tags"]
    )
    assert "scenario" not in requests[2].inputs
    assert list(requests[-1].inputs) == ["examples"]


def test_warmup_replays_to_the_keras_predictions(
    kmtl_model, kmtl_spec, kmtl_sample, kmtl_exported
):
    session = SessionModel(kmtl_exported)
    served_by = endpoints(
        kmtl_model, serving_input_signature(kmtl_model), kmtl_spec
    )
    for log in read_warmup(kmtl_exported):
        request = log.predict_log.request
        name = request.model_spec.signature_name
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        rows = len(next(iter(inputs.values())))
        # The requests are the first rows of the export sample.
        head = {k: v[:rows] for k, v in kmtl_sample.items()}
        expected_request = served_by[name].request(head)
        assert sorted(inputs) == sorted(expected_request)
        for key, value in inputs.items():
            np.testing.assert_array_equal(
                _canonical(value), _canonical(expected_request[key])
            )
        served = session.run(name, inputs)
        assert_same(
            served, predict(kmtl_model, served_by[name].model_inputs(head))
        )
    session.close()


def _canonical(array):
    """Strings as bytes, numbers as they are: how a TensorProto holds them."""
    if array.dtype.kind not in "OSU":
        return array
    return np.vectorize(
        lambda v: v if isinstance(v, bytes) else str(v).encode(),
        otypes=[object],
    )(array)

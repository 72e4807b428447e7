"""`kmtl.serving.Client` against the test double of TF Serving: REST
(`inputs` and `instances`) and gRPC, every signature, status, bad requests,
timeouts, server faults, missing values, connection reuse."""

import json
import socket
import threading
import time

import numpy as np
import pandas as pd
import pytest

from kmtl.export import synthetic_rows
from kmtl.serving import Client
from kmtl.serving import ServingError
from kmtl.serving import ServingTimeout
from tests.export.tiny_model import SCENARIOS
from tests.export.tiny_model import predict
from tests.serving.conftest import MODEL_NAME
from tests.serving.fake_model_server import FakeModelServer

SIGNATURES = (
    "serving_default",
    *(f"scenario_{value}" for value in SCENARIOS),
    "examples",
)
CALLS = [("rest", "inputs"), ("rest", "instances"), ("grpc", "inputs")]


def _frame(features):
    """Raw features as a DataFrame: one column per feature, lists for
    vectors and sequences, plus a label column the client must ignore."""
    frame = pd.DataFrame(
        {
            name: list(value) if value.ndim > 1 else value
            for name, value in features.items()
        }
    )
    frame["click"] = 1
    return frame.set_axis([f"row{i}" for i in range(len(frame))])


def _client(server, protocol, **kwargs):
    port = server.rest_port if protocol == "rest" else server.grpc_port
    return Client(f"localhost:{port}", MODEL_NAME, protocol=protocol, **kwargs)


def _expected(model, features, signature):
    if signature.startswith("scenario_"):
        index = SCENARIOS.index(signature.removeprefix("scenario_"))
        features = {
            **features,
            "scenario": np.full(len(features["price"]), index, "int64"),
        }
    return predict(model, features)


@pytest.mark.parametrize("protocol, format", CALLS)
def test_every_signature_through_the_client(
    fake_server, served_model, served_spec, protocol, format
):
    features = synthetic_rows(served_spec, 5, seed=11)
    frame = _frame(features)
    client = _client(fake_server, protocol, spec=served_spec)
    for signature in SIGNATURES:
        got = client.predict(frame, signature, format=format)
        assert sorted(got.columns) == ["ctr", "cvr"]
        assert list(got.index) == list(frame.index)
        expected = _expected(served_model, features, signature)
        for task in ("ctr", "cvr"):
            np.testing.assert_allclose(
                got[task].to_numpy(), expected[task][:, 0], rtol=0, atol=1e-5
            )


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_status_and_unknown_model(fake_server, protocol):
    assert _client(fake_server, protocol).status() == {1: "AVAILABLE"}
    assert _client(fake_server, protocol).wait_until_available(5) == 1
    port = (
        fake_server.rest_port if protocol == "rest" else (fake_server.grpc_port)
    )
    other = Client(f"localhost:{port}", "nope", protocol=protocol)
    with pytest.raises(ServingError, match="Servable not found") as caught:
        other.status()
    assert caught.value.code in ("404", "NOT_FOUND")


def _bad(features, change):
    if change == "missing":
        del features["price"]
    elif change == "dtype":
        features["user_id"] = features["user_id"].astype("float32") + 0.5
    elif change == "shape":
        features["dense"] = features["dense"][:, :2]
    elif change == "scenario":
        features["scenario"][1] = 7
    return features


@pytest.mark.parametrize("protocol, format", CALLS)
@pytest.mark.parametrize(
    "change, named",
    [
        ("missing", "price"),
        ("dtype", "user_id"),
        ("shape", "dense"),
        ("scenario", "scenario"),
    ],
)
def test_bad_requests_are_invalid_argument_naming_the_feature(
    fake_server, served_spec, protocol, format, change, named
):
    features = _bad(synthetic_rows(served_spec, 3, seed=12), change)
    # No spec: the request reaches the server as given.
    client = _client(fake_server, protocol)
    with pytest.raises(ServingError, match=named) as caught:
        client.predict(features, format=format)
    assert caught.value.code in ("400", "INVALID_ARGUMENT")
    assert named in caught.value.message  # the server's own message
    assert "model 'tiny', signature 'serving_default'" in str(caught.value)


@pytest.mark.parametrize(
    "protocol, format", [*CALLS[1:], ("rest", "instances")]
)
def test_unknown_feature_is_named(fake_server, served_spec, protocol, format):
    # TF Serving refuses an unknown key in `instances` and over gRPC; it
    # ignores one in a columnar `inputs` object (json_tensor.cc reads only
    # the signature's keys), as the test double does.
    features = synthetic_rows(served_spec, 2, seed=15)
    features["colour"] = np.asarray(["red", "blue"], dtype=object)
    with pytest.raises(ServingError, match="colour") as caught:
        _client(fake_server, protocol).predict(features, format=format)
    assert caught.value.code in ("400", "INVALID_ARGUMENT")


@pytest.mark.parametrize(
    "change, named", [("missing", "price"), ("dtype", "user_id")]
)
def test_client_with_a_spec_names_the_feature_before_sending(
    fake_server, served_spec, change, named
):
    features = _bad(synthetic_rows(served_spec, 3, seed=13), change)
    client = _client(fake_server, "rest", spec=served_spec)
    with pytest.raises(ValueError, match=named):
        client.predict(_frame(features))


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_unknown_categorical_values_are_oov_not_errors(
    fake_server, served_model, served_spec, protocol
):
    features = synthetic_rows(served_spec, 3, seed=14)
    features["country"][:] = ["never-seen", "us", "zz"]
    features["user_id"][:] = [10_000, -3, 2]
    features["tags"][0] = ["unseen", "", ""]
    got = _client(fake_server, protocol, spec=served_spec).predict(
        _frame(features)
    )
    expected = predict(served_model, features)
    np.testing.assert_allclose(got["ctr"], expected["ctr"][:, 0], atol=1e-5)


@pytest.fixture
def silent_port():
    """A port that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield listener.getsockname()[1]
    listener.close()


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_timeout_raises_serving_timeout(silent_port, served_spec, protocol):
    client = Client(
        f"localhost:{silent_port}",
        MODEL_NAME,
        protocol=protocol,
        timeout=0.3,
    )
    with pytest.raises(ServingTimeout, match="0.3 s"):
        client.predict(synthetic_rows(served_spec, 1))


def test_unreachable_server_is_unavailable(served_spec):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = Client(f"localhost:{port}", MODEL_NAME)
    with pytest.raises(ServingError) as caught:
        client.status()
    assert caught.value.code == "UNAVAILABLE"


# --- server faults ---------------------------------------------------------

REST_FAULTS = [
    ("drop", "UNAVAILABLE", "closed the connection without answering"),
    ("no_outputs", "INTERNAL", "HTTP 200 without 'outputs'"),
    ("malformed", "INTERNAL", "malformed JSON"),
    ("status_502", "502", "HTTP 502 Bad Gateway"),
]


@pytest.mark.parametrize("fault, code, what", REST_FAULTS)
def test_rest_faults_raise_serving_error(
    fake_server, served_spec, fault, code, what
):
    features = synthetic_rows(served_spec, 2, seed=16)
    client = _client(fake_server, "rest")
    with fake_server.fault(fault, times=-1):
        with pytest.raises(ServingError) as caught:
            client.predict(features, "scenario_home")
    assert caught.value.code == code
    assert what in caught.value.message
    assert "model 'tiny', signature 'scenario_home'" in str(caught.value)
    assert caught.value.model_name == MODEL_NAME
    assert caught.value.signature_name == "scenario_home"
    assert len(client.predict(features)) == 2  # and the client recovers


@pytest.mark.parametrize(
    "fault, code, what",
    [
        ("drop", "UNAVAILABLE", "Connection reset"),
        ("no_outputs", "INTERNAL", "without outputs"),
    ],
)
def test_grpc_faults_raise_serving_error(
    fake_server, served_spec, fault, code, what
):
    features = synthetic_rows(served_spec, 2, seed=17)
    client = _client(fake_server, "grpc")
    with fake_server.fault(fault, times=-1):
        with pytest.raises(ServingError, match=what) as caught:
            client.predict(features)
    assert caught.value.code == code
    assert "model 'tiny', signature 'serving_default'" in str(caught.value)


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_slow_answer_raises_serving_timeout(fake_server, served_spec, protocol):
    features = synthetic_rows(served_spec, 1, seed=18)
    client = _client(fake_server, protocol, timeout=0.2)
    with fake_server.fault("slow", times=1, delay=0.6):
        with pytest.raises(ServingTimeout, match="within 0.2 s") as caught:
            client.predict(features)
    assert caught.value.code == "DEADLINE_EXCEEDED"
    assert "model 'tiny', signature 'serving_default'" in str(caught.value)
    assert isinstance(caught.value, ServingError)


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_connection_refused_names_model_and_signature(served_spec, protocol):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = Client(f"127.0.0.1:{port}", MODEL_NAME, protocol=protocol)
    with pytest.raises(ServingError) as caught:
        client.predict(synthetic_rows(served_spec, 1), "examples")
    assert caught.value.code == "UNAVAILABLE"
    assert "model 'tiny', signature 'examples'" in str(caught.value)


# --- connections -----------------------------------------------------------


def test_rest_reuses_one_connection(fake_server, served_spec):
    features = synthetic_rows(served_spec, 2, seed=19)
    before = fake_server.connections()["rest"]
    with _client(fake_server, "rest") as client:
        client.status()
        for _ in range(20):
            client.predict(features)
        assert client.connections_opened == 1
    assert fake_server.connections()["rest"] - before == 1


def test_rest_reconnects_once_on_a_dropped_idle_connection(
    fake_server, served_spec
):
    features = synthetic_rows(served_spec, 2, seed=20)
    client = _client(fake_server, "rest")
    client.predict(features)
    # The server answers, then closes the connection as an idle timeout
    # would, without `Connection: close`: the next request finds it dead.
    with fake_server.fault("close_after", times=1):
        client.predict(features)
    assert len(client.predict(features)) == 2
    assert client.connections_opened == 2
    # A request dropped on a reused connection is sent once more...
    with fake_server.fault("drop", times=1):
        assert len(client.predict(features)) == 2
    assert client.connections_opened == 3
    # ... once only: dropped again, it is an error.
    with fake_server.fault("drop", times=2):
        with pytest.raises(ServingError, match="without answering"):
            client.predict(features)
    assert client.connections_opened == 4
    # A new connection dropped is not sent again.
    fresh = _client(fake_server, "rest")
    with fake_server.fault("drop", times=1):
        with pytest.raises(ServingError, match="without answering"):
            fresh.predict(features)
    assert fresh.connections_opened == 1


def test_idle_timeout_of_the_server_is_transparent(served_base, served_spec):
    features = synthetic_rows(served_spec, 2, seed=21)
    with FakeModelServer(MODEL_NAME, served_base, idle_timeout=0.2) as server:
        client = Client(f"127.0.0.1:{server.rest_port}", MODEL_NAME)
        client.predict(features)
        time.sleep(0.5)  # the server closes the idle connection
        assert len(client.predict(features)) == 2
        assert client.connections_opened == 2
        assert server.connections()["rest"] == 2


def test_one_client_shared_by_threads(fake_server, served_spec):
    features = synthetic_rows(served_spec, 3, seed=22)
    results, errors = [], []
    for protocol in ("rest", "grpc"):
        client = _client(fake_server, protocol)

        def work(client=client):
            try:
                for _ in range(10):
                    results.append(len(client.predict(features)))
            except Exception as err:  # noqa: BLE001
                errors.append(err)

        threads = [threading.Thread(target=work) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if protocol == "rest":
            assert 1 <= client.connections_opened <= 6
        client.close()
    assert not errors
    assert results == [3] * 120


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_closed_client_raises_serving_error(fake_server, served_spec, protocol):
    client = _client(fake_server, protocol)
    client.close()
    with pytest.raises(ServingError, match="closed"):
        client.predict(synthetic_rows(served_spec, 1))


# --- missing values --------------------------------------------------------


def _with_missing(served_spec):
    """A pandas 3 frame with a missing value in every kind of column."""
    features = synthetic_rows(served_spec, 3, seed=23)
    frame = _frame(features)
    frame["country"] = pd.Series(
        ["us", None, "fr"], dtype="str", index=frame.index
    )
    frame["query"] = pd.Series(
        [None, "q", np.nan], dtype=object, index=frame.index
    )
    frame["user_id"] = pd.array([4, None, 7], dtype="Int64")
    frame["price"] = [np.nan, 9.0, 11.0]
    filled = dict(features)
    filled["country"] = np.asarray(["us", "", "fr"], dtype=object)
    filled["query"] = np.asarray(["", "q", ""], dtype=object)
    filled["user_id"] = np.asarray([4, -1, 7], "int64")
    filled["price"] = np.asarray([np.nan, 9.0, 11.0], "float32")
    return frame, filled


@pytest.mark.parametrize("with_spec", [False, True])
def test_missing_values_are_sent_alike_over_rest_and_grpc(
    fake_server, served_model, served_spec, with_spec
):
    frame, filled = _with_missing(served_spec)
    assert frame["country"].to_numpy()[1] != frame["country"].to_numpy()[1]
    if not with_spec:
        frame = frame.drop(columns="click")
    spec = served_spec if with_spec else None
    expected = predict(served_model, filled)
    for protocol, format in CALLS:
        got = _client(fake_server, protocol, spec=spec).predict(
            frame, format=format
        )
        for task in ("ctr", "cvr"):
            np.testing.assert_allclose(
                got[task].to_numpy(), expected[task][:, 0], atol=1e-5
            )
            assert np.isfinite(got[task]).all()  # the graph fills NaN


def test_rest_body_holds_the_fills_and_nan(fake_server, served_spec):
    frame, _ = _with_missing(served_spec)
    client = _client(fake_server, "rest")
    sent = []
    request = client._pool.request

    def spy(method, path, body=None, headers=None):
        sent.append(body)
        return request(method, path, body, headers)

    client._pool.request = spy
    client.predict(frame.drop(columns="click"))
    text = sent[0].decode()
    inputs = json.loads(text)["inputs"]  # Python reads NaN back
    assert inputs["country"] == ["us", "", "fr"]
    assert inputs["query"] == ["", "q", ""]
    assert inputs["user_id"] == [4, -1, 7]
    assert '"price": [NaN, 9.0, 11.0]' in text  # TF Serving parses NaN
    assert "null" not in text


def test_mixed_types_without_a_spec_name_the_column(fake_server, served_spec):
    features = synthetic_rows(served_spec, 2, seed=24)
    features["country"] = np.asarray(["us", 3], dtype=object)
    for protocol in ("rest", "grpc"):
        with pytest.raises(ValueError, match="'country' mixes value types"):
            _client(fake_server, protocol).predict(features)


def test_float_null_is_refused_as_tf_serving_does(fake_server, served_spec):
    features = synthetic_rows(served_spec, 2, seed=25)
    body = {"inputs": {k: v.tolist() for k, v in features.items()}}
    body["inputs"]["price"] = [None, 1.0]
    client = _client(fake_server, "rest")
    with pytest.raises(ServingError, match="price") as caught:
        client._rest("POST", f"/v1/models/{MODEL_NAME}:predict", body)
    assert caught.value.code == "400"

"""`kmtl.serving.Client` against the test double of TF Serving: REST
(`inputs` and `instances`) and gRPC, every signature, status, bad requests,
timeouts."""

import socket

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

"""The real `tensorflow_model_server`, when it is on PATH: start it on
loopback ports with `kmtl serve-config`'s files, wait until the model is
AVAILABLE, call every signature over REST and gRPC, compare with Keras."""

import shutil
import socket
import subprocess

import numpy as np
import pytest

from kmtl.export import synthetic_rows
from kmtl.serving import Client
from kmtl.serving import ServingError
from kmtl.serving.config import write_serving_config
from tests.export.tiny_model import SCENARIOS
from tests.export.tiny_model import predict
from tests.serving.conftest import MODEL_NAME

BINARY = shutil.which("tensorflow_model_server")
pytestmark = pytest.mark.skipif(
    BINARY is None,
    reason="tensorflow_model_server is not on PATH (it cannot be installed "
    "on our machines; see DESIGN.md); the test double covers the wire "
    "formats",
)


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def real_server(served_base, tmp_path_factory):
    config = write_serving_config(
        tmp_path_factory.mktemp("config"),
        {MODEL_NAME: served_base},
        grpc_port=_free_port(),
        rest_port=_free_port(),
    )
    process = subprocess.Popen(
        config.server_command(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        Client(
            f"127.0.0.1:{config.rest_port}", MODEL_NAME
        ).wait_until_available(120)
        yield config
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_every_signature_on_the_real_server(
    real_server, served_model, served_spec, protocol
):
    port = (
        real_server.rest_port if protocol == "rest" else real_server.grpc_port
    )
    client = Client(
        f"127.0.0.1:{port}", MODEL_NAME, protocol=protocol, spec=served_spec
    )
    features = synthetic_rows(served_spec, 4, seed=21)
    for signature in ["serving_default", "examples"] + [
        f"scenario_{v}" for v in SCENARIOS
    ]:
        inputs = dict(features)
        if signature.startswith("scenario_"):
            index = SCENARIOS.index(signature.removeprefix("scenario_"))
            inputs["scenario"] = np.full(4, index, "int64")
        got = client.predict(features, signature)
        expected = predict(served_model, inputs)
        for task in ("ctr", "cvr"):
            np.testing.assert_allclose(
                got[task].to_numpy(), expected[task][:, 0], atol=1e-5
            )


def test_out_of_range_scenario_on_the_real_server(real_server, served_spec):
    client = Client(f"127.0.0.1:{real_server.rest_port}", MODEL_NAME)
    features = synthetic_rows(served_spec, 2, seed=22)
    features["scenario"][0] = 9
    with pytest.raises(ServingError, match="scenario"):
        client.predict(features)

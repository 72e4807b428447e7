"""The real `tensorflow_model_server`, when it is on PATH (the
`real_server` fixture of conftest.py starts it on loopback ports with
`kmtl serve-config`'s files and waits until the model is AVAILABLE): call
every signature over REST and gRPC, compare with Keras."""

import numpy as np
import pytest

from kmtl.export import synthetic_rows
from kmtl.serving import Client
from kmtl.serving import ServingError
from tests.export.tiny_model import SCENARIOS
from tests.export.tiny_model import predict
from tests.serving.conftest import BINARY
from tests.serving.conftest import MODEL_NAME
from tests.serving.conftest import NO_BINARY

pytestmark = pytest.mark.skipif(BINARY is None, reason=NO_BINARY)


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

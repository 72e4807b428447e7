"""A tiny kmtl model, exported once, served by the test double; and the
real `tensorflow_model_server` when it is on PATH."""

import shutil
import socket
import subprocess

import pytest

from kmtl.export import export
from kmtl.export import synthetic_rows
from kmtl.serving import Client
from kmtl.serving.config import write_serving_config
from tests.export.tiny_model import tiny_model
from tests.export.tiny_model import tiny_spec
from tests.serving.fake_model_server import FakeModelServer

MODEL_NAME = "tiny"
BINARY = shutil.which("tensorflow_model_server")
NO_BINARY = (
    "tensorflow_model_server is not on PATH (it cannot be installed on our "
    "machines; see DESIGN.md); the test double covers the wire formats"
)


@pytest.fixture(scope="session")
def served_spec():
    return tiny_spec()


@pytest.fixture(scope="session")
def served_model(served_spec):
    return tiny_model(served_spec)


@pytest.fixture(scope="session")
def served_base(served_model, served_spec, tmp_path_factory):
    base = tmp_path_factory.mktemp("serving") / MODEL_NAME
    export(served_model, base, sample=synthetic_rows(served_spec, 8, seed=2))
    return base


@pytest.fixture(scope="session")
def fake_server(served_base):
    with FakeModelServer(MODEL_NAME, served_base) as server:
        yield server


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def real_server(served_base, tmp_path_factory):
    """`tensorflow_model_server` on loopback ports with `kmtl serve-config`'s
    files, once the model is AVAILABLE; skips when it is not on PATH."""
    if BINARY is None:
        pytest.skip(NO_BINARY)
    folder = tmp_path_factory.mktemp("config")
    config = write_serving_config(
        folder,
        {MODEL_NAME: served_base},
        grpc_port=_free_port(),
        rest_port=_free_port(),
    )
    log = open(folder / "tensorflow_model_server.log", "wb")  # noqa: SIM115
    # A file, not a pipe: an unread pipe fills and stalls the server.
    process = subprocess.Popen(
        config.server_command(), stdout=log, stderr=subprocess.STDOUT
    )
    try:
        Client(
            f"127.0.0.1:{config.rest_port}", MODEL_NAME
        ).wait_until_available(120)
        yield config
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()

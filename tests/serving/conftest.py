"""A tiny kmtl model, exported once, served by the test double."""

import pytest

from kmtl.export import export
from kmtl.export import synthetic_rows
from tests.export.tiny_model import tiny_model
from tests.export.tiny_model import tiny_spec
from tests.serving.fake_model_server import FakeModelServer

MODEL_NAME = "tiny"


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

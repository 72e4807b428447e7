"""Fixtures of a kmtl model exported once per session (the tests of
`test_saved_model.py` use a plain Keras model of their own)."""

import pytest

from kmtl.export import export
from kmtl.export import synthetic_rows
from tests.export.tiny_model import tiny_model
from tests.export.tiny_model import tiny_spec


@pytest.fixture(scope="session")
def kmtl_spec():
    return tiny_spec()


@pytest.fixture(scope="session")
def kmtl_model(kmtl_spec):
    return tiny_model(kmtl_spec)


@pytest.fixture(scope="session")
def kmtl_sample(kmtl_spec):
    """The rows the model is exported with (its warmup is built on them)."""
    return synthetic_rows(kmtl_spec, 8, seed=2)


@pytest.fixture(scope="session")
def kmtl_exported(kmtl_model, kmtl_sample, tmp_path_factory):
    """One export of the tiny model, shared by read-only tests."""
    base = tmp_path_factory.mktemp("exported") / "tiny"
    return export(kmtl_model, base, sample=kmtl_sample)

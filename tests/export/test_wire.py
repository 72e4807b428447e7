"""Malformed serialized `tf.Example`s to the `examples` signature: a clean
`InvalidArgument` naming the signature and the rows, never TF's message
with the raw bytes (which Python fails to decode: `UnicodeDecodeError`)."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from kmtl.export import serialize_examples
from kmtl.export import synthetic_rows
from kmtl.export.wire import canonical_rows
from kmtl.export.wire import unreadable_rows
from tests.export.session_loader import SessionModel
from tests.export.tiny_model import assert_same
from tests.export.tiny_model import predict

GARBAGE = b"\xff\xfe not a proto \x80"
UNREADABLE = r"Signature examples: rows of the input examples that are not"


@pytest.fixture(scope="module")
def session(kmtl_exported):
    loaded = SessionModel(kmtl_exported)
    yield loaded
    loaded.close()


def _batch(*protos):
    return {"examples": np.array(list(protos), dtype=object)}


def test_garbage_bytes_name_the_signature_and_rows(kmtl_spec, session):
    good = serialize_examples(synthetic_rows(kmtl_spec, 2, seed=1), kmtl_spec)
    truncated = good[1][:-3]
    batch = _batch(good[0], GARBAGE, good[1], truncated)
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=UNREADABLE + r".*\] \[1 3\]"
    ):
        session.run("examples", batch)


def test_garbage_bytes_through_saved_model_cli(kmtl_exported, tmp_path):
    cli = pathlib.Path(sys.executable).with_name("saved_model_cli")
    if not cli.exists():
        pytest.skip(f"saved_model_cli not found beside {sys.executable}")
    result = subprocess.run(
        [
            str(cli),
            "run",
            "--dir",
            str(kmtl_exported),
            "--tag_set",
            "serve",
            "--signature_def",
            "examples",
            "--input_exprs",
            f"examples=[{GARBAGE!r}]",
            "--outdir",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "UnicodeDecodeError" not in result.stderr
    assert "InvalidArgumentError" in result.stderr
    assert UNREADABLE in result.stderr


def test_valid_rows_of_other_wire_forms_are_served(
    kmtl_model, kmtl_spec, session
):
    """Rows the fast check does not vouch for, which TF's parser reads: the
    exact check lets them through."""
    features = synthetic_rows(kmtl_spec, 2, seed=3)
    protos = serialize_examples(features, kmtl_spec)
    # Two Examples concatenated merge: the second row's values win.
    merged = protos[0] + protos[1]
    # An unknown top-level field (field 5, varint) is skipped.
    unknown = protos[0] + b"\x28\x07"
    served = session.run("examples", _batch(merged, unknown))
    second, first = (
        {k: v[i : i + 1] for k, v in features.items()} for i in (1, 0)
    )
    expected = predict(
        kmtl_model, {k: np.concatenate([second[k], first[k]]) for k in second}
    )
    assert_same(served, expected)


def _mutations(protos, count, seed):
    rng = np.random.default_rng(seed)
    rows = list(protos) + [b"", tf.train.Example().SerializeToString()]
    for _ in range(count):
        row = bytearray(protos[rng.integers(len(protos))])
        kind = rng.integers(4)
        if kind == 0:
            row[rng.integers(len(row))] = rng.integers(256)
        elif kind == 1:
            del row[rng.integers(len(row)) :]
        elif kind == 2:
            where = rng.integers(len(row) + 1)
            row[where:where] = (
                rng.integers(0, 256, 3).astype(np.uint8).tobytes()
            )
        else:
            row = bytearray(rng.integers(0, 256, 20).astype(np.uint8).tobytes())
        rows.append(bytes(row))
    return rows


def _parses(row):
    probe = {"absent": tf.io.RaggedFeature(tf.string)}
    try:
        tf.io.parse_example(tf.constant([row]), probe)
    except (tf.errors.InvalidArgumentError, UnicodeDecodeError):
        return False
    return True


def test_the_fast_check_is_sound_and_the_slow_one_exact(kmtl_spec):
    protos = serialize_examples(synthetic_rows(kmtl_spec, 8, seed=4), kmtl_spec)
    rows = _mutations(protos, 400, seed=5)
    truth = np.array([_parses(row) for row in rows])
    serialized = tf.constant(np.array(rows, dtype=object))
    canonical = canonical_rows(serialized).numpy()
    # Every row it vouches for is readable; all of kmtl's own rows are.
    assert not np.any(canonical & ~truth)
    assert canonical[: len(protos) + 2].all()
    assert (~truth).sum() > 50  # the mutations break many rows
    bad = unreadable_rows(serialized, tf.constant(~canonical)).numpy()
    assert sorted(bad) == list(np.flatnonzero(~truth))

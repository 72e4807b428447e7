"""Versions: keep_last, stale staging directories, concurrent exporters,
and exports that fail or are killed (`kill -9`) mid-write leave nothing TF
Serving would load."""

import contextlib
import hashlib
import multiprocessing
import os
import pathlib
import queue
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import tensorflow as tf

from kmtl.export import ASSETS_EXTRA
from kmtl.export import WARMUP_FILE
from kmtl.export import export
from kmtl.export import list_versions
from kmtl.export import versions
from kmtl.export.versions import DELETING_PREFIX
from kmtl.export.versions import STAGING_PREFIX
from kmtl.export.versions import STALE_AFTER_S
from kmtl.export.versions import is_complete
from kmtl.export.versions import lease_path
from kmtl.export.versions import prune_versions
from kmtl.export.versions import publish
from kmtl.export.versions import remove_stale_staging
from kmtl.export.versions import staging_directory
from kmtl.export.versions import staging_lease
from kmtl.warnings import KMTLWarning
from tests.export.concurrent_export import export_versions

REPO = pathlib.Path(__file__).parents[2]


def _digest(path):
    digest = hashlib.sha256()
    for file in sorted(pathlib.Path(path).rglob("*")):
        digest.update(str(file.relative_to(path)).encode())
        if file.is_file():
            digest.update(file.read_bytes())
    return digest.hexdigest()


def _entries(base):
    return sorted(child.name for child in pathlib.Path(base).iterdir())


def test_keep_last_deletes_the_oldest_versions(kmtl_model, tmp_path):
    base = tmp_path / "tiny"
    for _ in range(2):
        export(kmtl_model, base)
    (base / "notes").mkdir()
    assert export(kmtl_model, base, keep_last=2) == base / "3"
    assert _entries(base) == ["2", "3", "notes"]
    assert export(kmtl_model, base, keep_last=1) == base / "4"
    assert _entries(base) == ["4", "notes"]


@pytest.mark.parametrize("keep_last", [0, -1, 1.5, True, "2"])
def test_bad_keep_last_is_rejected_before_writing(
    kmtl_model, tmp_path, keep_last
):
    with pytest.raises(ValueError, match="keep_last"):
        export(kmtl_model, tmp_path / "tiny", keep_last=keep_last)
    assert not (tmp_path / "tiny").exists()


def _fake_version(path):
    """A directory that `is_complete` accepts (not loadable: for pruning)."""
    (path / "variables").mkdir(parents=True)
    (path / "variables" / "variables.index").write_bytes(b"index")
    (path / "saved_model.pb").write_bytes(b"graph")
    return path


def test_prune_never_deletes_the_protected_version(tmp_path):
    for version in (1, 2, 5):
        _fake_version(tmp_path / str(version))
    # A version newer than the one just exported (another exporter's).
    assert prune_versions(tmp_path, 1, protect=2) == [1]
    assert list_versions(tmp_path) == [2, 5]
    assert _entries(tmp_path) == ["2", "5"]


def test_incomplete_version_dirs_are_not_versions_to_keep(tmp_path):
    assert is_complete(_fake_version(tmp_path / "ok"))
    (tmp_path / "empty").mkdir()
    partial = _fake_version(tmp_path / "partial")
    (partial / "variables" / "variables.index").unlink()
    no_graph = _fake_version(tmp_path / "no_graph")
    (no_graph / "saved_model.pb").write_bytes(b"")
    for name in ("empty", "partial", "no_graph"):
        assert not is_complete(tmp_path / name), name


def test_stray_version_dirs_never_make_keep_last_prune_a_good_one(
    kmtl_model, tmp_path
):
    base = tmp_path / "tiny"
    for _ in range(2):
        export(kmtl_model, base)
    (base / "3").mkdir()  # empty: a stray, say a failed copy
    (base / "4").mkdir()
    (base / "4" / "saved_model.pb").write_bytes(b"")  # half copied
    assert list_versions(base, complete=True) == [1, 2]
    # The new version goes above every name TF Serving would try to load.
    assert export(kmtl_model, base, keep_last=2) == base / "5"
    # keep_last counts the complete versions 1, 2, 5: only 1 goes, and the
    # strays are left as they are.
    assert _entries(base) == ["2", "3", "4", "5"]
    assert list_versions(base, complete=True) == [2, 5]


def test_pruning_failure_is_a_warning_after_the_version_is_live(
    kmtl_model, tmp_path, monkeypatch
):
    base = tmp_path / "tiny"
    for _ in range(2):
        export(kmtl_model, base)
    real_rename = os.rename

    def rename(source, target):
        if pathlib.Path(source).name.isdigit():  # unpublishing an old one
            raise PermissionError(13, "Permission denied", str(source))
        return real_rename(source, target)

    monkeypatch.setattr(versions.os, "rename", rename)
    with pytest.warns(KMTLWarning, match="Could not delete") as record:
        path = export(kmtl_model, base, keep_last=1)
    # One warning per old version, naming its directory.
    named = (re.search(r"old version (\S+) \(", str(w.message)) for w in record)
    assert sorted(m.group(1) for m in named) == [
        str(base / "1"),
        str(base / "2"),
    ]
    assert path == base / "3"
    assert is_complete(path)
    assert list_versions(base, complete=True) == [1, 2, 3]

    # Deleting the unpublished directory fails too: still a warning, and
    # the next export removes what is left.
    monkeypatch.setattr(versions.os, "rename", real_rename)
    monkeypatch.setattr(versions.shutil, "rmtree", lambda *a, **k: None)
    with pytest.warns(KMTLWarning, match="unpublished") as record:
        assert export(kmtl_model, base, keep_last=1) == base / "4"
    assert len(record) == 3  # versions 1, 2 and 3
    hidden = [n for n in _entries(base) if n.startswith(DELETING_PREFIX)]
    assert len(hidden) == 3
    monkeypatch.undo()
    assert export(kmtl_model, base, keep_last=1) == base / "5"
    assert _entries(base) == ["5"]


def test_a_taken_version_number_publishes_under_the_next(
    kmtl_model, tmp_path, monkeypatch
):
    base = tmp_path / "tiny"
    export(kmtl_model, base)
    real_rename = os.rename
    raced = []

    def rename(source, target):
        # Another exporter publishes the same number just before us.
        if pathlib.Path(source).name.startswith(STAGING_PREFIX) and not raced:
            raced.append(target)
            _fake_version(pathlib.Path(target))
        return real_rename(source, target)

    monkeypatch.setattr(versions.os, "rename", rename)
    assert export(kmtl_model, base) == base / "3"
    assert raced == [base / "2"]
    assert (base / "2" / "saved_model.pb").read_bytes() == b"graph"
    assert is_complete(base / "3")
    assert all(name.isdigit() for name in _entries(base))


def test_publish_gives_up_clearly(tmp_path, monkeypatch):
    staging = staging_directory(tmp_path)
    staging.mkdir()
    monkeypatch.setattr(versions, "PUBLISH_ATTEMPTS", 3)
    real_rename = os.rename

    def always_taken(source, target):
        _fake_version(pathlib.Path(target))
        return real_rename(source, target)

    monkeypatch.setattr(versions.os, "rename", always_taken)
    with pytest.raises(FileExistsError, match=r"\[1, 2, 3\] were each taken"):
        publish(staging, tmp_path)
    assert staging.is_dir()  # export removes it

    staging.rmdir()  # removed as abandoned while we were stopped
    with pytest.raises(FileNotFoundError, match="abandoned"):
        publish(staging, tmp_path)


def _age(path, seconds):
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_only_provably_abandoned_staging_is_removed(tmp_path):
    old = STALE_AFTER_S + 60
    # kmtl's older naming, with the pid of a process on another host: no
    # pid is consulted, only the age.
    other_host = tmp_path / f".kmtl-export-1-{'a' * 32}"
    (other_host / "variables").mkdir(parents=True)
    # Stale directory, fresh lease: its owner is alive.
    renewed = staging_directory(tmp_path)
    renewed.mkdir()
    _age(renewed, old)
    lease_path(renewed).touch()
    # Both stale: abandoned.
    abandoned = staging_directory(tmp_path)
    (abandoned / "variables").mkdir(parents=True)
    lease_path(abandoned).touch()
    _age(lease_path(abandoned), old)
    _age(abandoned, old)
    # A lease whose directory is not created yet, and an old orphan one.
    starting = lease_path(staging_directory(tmp_path))
    starting.touch()
    orphan = lease_path(staging_directory(tmp_path))
    orphan.touch()
    _age(orphan, old)
    # Being deleted: removed whatever its age.
    deleting = tmp_path / f"{DELETING_PREFIX}{'b' * 32}"
    (deleting / "variables").mkdir(parents=True)
    other = tmp_path / ".kmtl-export-9-abc"  # not a name kmtl makes
    other.mkdir()
    _age(other, old)

    removed = remove_stale_staging(tmp_path)
    assert sorted(removed) == sorted([abandoned, orphan, deleting])
    assert _entries(tmp_path) == sorted(
        [
            other_host.name,
            renewed.name,
            lease_path(renewed).name,
            starting.name,
            other.name,
        ]
    )

    _age(other_host, old)
    assert remove_stale_staging(tmp_path) == [other_host]


def test_the_lease_is_renewed_while_exporting(tmp_path):
    staging = staging_directory(tmp_path)
    with staging_lease(staging, heartbeat_s=0.05) as lease:
        assert lease == lease_path(staging) and lease.is_file()
        _age(lease, STALE_AFTER_S + 60)
        deadline = time.time() + 10
        while time.time() - lease.stat().st_mtime > 60:
            assert time.time() < deadline, "the lease was not renewed"
            time.sleep(0.05)
        staging.mkdir()
        assert remove_stale_staging(tmp_path) == []
    assert not lease.exists()


@pytest.mark.slow
def test_concurrent_exporters_publish_distinct_complete_versions(tmp_path):
    """Several processes export to one base path at once: every export is
    published, each under its own number, and no directory TF Serving would
    load is ever seen incomplete."""
    base = tmp_path / "tiny"
    processes, exports_each = 3, 2
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results = context.Queue()
    children = [
        context.Process(
            target=export_versions,
            args=(str(base), exports_each, barrier, results),
        )
        for _ in range(processes)
    ]
    for child in children:
        child.start()
    seen_incomplete = []
    reports = []
    deadline = time.time() + 600
    while len(reports) < processes:
        assert time.time() < deadline, "the exporters did not finish"
        for name in list_versions(base):
            if not (base / str(name) / ASSETS_EXTRA / WARMUP_FILE).is_file():
                seen_incomplete.append(name)  # the warmup file comes last
        with contextlib.suppress(queue.Empty):
            reports.append(results.get(timeout=0.05))
    for child in children:
        child.join(timeout=60)
    failed = [report for _, report in reports if isinstance(report, str)]
    assert not failed, failed[0]
    assert seen_incomplete == []
    paths = sorted(path for _, mine in reports for path in mine)
    assert len(paths) == len(set(paths)) == processes * exports_each
    assert list_versions(base) == list(range(1, processes * exports_each + 1))
    assert _entries(base) == [str(v) for v in sorted(list_versions(base))]
    for path in paths:
        signatures = tf.saved_model.load(path).signatures
        assert "serving_default" in signatures


# A child process that exports and hangs at a chosen point, to be killed.
_CHILD = textwrap.dedent(
    """
    import sys, time
    from kmtl.export import saved_model, versions
    from tests.export.tiny_model import tiny_model, tiny_spec

    base, point = sys.argv[1], sys.argv[2]
    model = tiny_model(tiny_spec())

    def hang(path, *args, **kwargs):
        print("HANGING", path, flush=True)
        time.sleep(600)

    if point == "save":  # the SavedModel is written, nothing checked yet
        saved_model._check_device_pins = hang
        saved_model.export(model, base)
    else:  # the new version is in place; an old one is being deleted
        versions.shutil.rmtree = hang
        saved_model.export(model, base, keep_last=1)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["save", "prune"])
def test_kill_9_mid_export_leaves_no_loadable_partial_version(
    kmtl_model, tmp_path, point
):
    base = tmp_path / "tiny"
    first = export(kmtl_model, base)
    before = _digest(first)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(base), point],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    try:
        line = child.stdout.readline()
        assert line.startswith("HANGING"), "the child exited before its hook"
        hidden = pathlib.Path(line.split()[1])
        assert hidden.parent == base and hidden.is_dir()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL

    # What TF Serving would load: all-digit directory names only.
    loadable = [name for name in _entries(base) if name.isdigit()]
    if point == "save":
        assert loadable == ["1"]
        assert _digest(first) == before
        assert hidden.name.startswith(STAGING_PREFIX)
    else:  # version 2 was complete and renamed; version 1 was hidden first
        assert loadable == ["2"]
        assert is_complete(base / "2")
        assert hidden.name.startswith(DELETING_PREFIX)
    assert hidden.exists()
    assert all(is_complete(base / name) for name in loadable)

    new = export(kmtl_model, base)
    assert new == base / str(int(loadable[-1]) + 1)
    if point == "save":
        # Its lease is fresh: the next export cannot tell a dead owner from
        # a live one on another host, and keeps it until the lease is old.
        lease = lease_path(hidden)
        assert hidden.exists() and lease.exists()
        for path in (hidden, lease):
            _age(path, STALE_AFTER_S + 60)
        export(kmtl_model, base)
        assert not lease.exists()
    assert not hidden.exists()
    assert all(name.isdigit() for name in _entries(base))
    for name in _entries(base):
        assert (
            "serving_default"
            in tf.saved_model.load(str(base / name)).signatures
        )

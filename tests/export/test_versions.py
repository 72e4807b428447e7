"""Versions: keep_last, stale staging directories, and exports that fail or
are killed (`kill -9`) mid-write leave nothing TF Serving would load."""

import hashlib
import os
import pathlib
import signal
import subprocess
import sys
import textwrap

import pytest

from kmtl.export import export
from kmtl.export import latest_version
from kmtl.export import list_versions
from kmtl.export.versions import prune_versions
from kmtl.export.versions import remove_stale_staging
from kmtl.export.versions import staging_directory

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


def test_prune_never_deletes_the_protected_version(tmp_path):
    for version in (1, 2, 5):
        (tmp_path / str(version)).mkdir()
    # A version newer than the one just exported (another exporter's).
    assert prune_versions(tmp_path, 1, protect=2) == [1]
    assert list_versions(tmp_path) == [2, 5]
    assert _entries(tmp_path) == ["2", "5"]


def test_stale_staging_of_dead_processes_is_removed(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".kmtl-export-{dead_pid}-{'a' * 32}"
    live = staging_directory(tmp_path)  # this process: an export under way
    other = tmp_path / ".kmtl-export-9-abc"  # not a name kmtl makes
    for path in (stale, live, other):
        (path / "variables").mkdir(parents=True)
    assert remove_stale_staging(tmp_path) == [stale]
    assert _entries(tmp_path) == sorted([live.name, other.name])
    assert latest_version(tmp_path) is None


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
    else:  # version 2 was complete and renamed; version 1 was hidden first
        assert loadable == ["2"]
        assert (base / "2" / "saved_model.pb").is_file()
    assert hidden.name.startswith(".kmtl-export-")
    assert hidden.exists()

    # The next export removes the dead process's staging directory.
    new = export(kmtl_model, base)
    assert new == base / str(int(loadable[-1]) + 1)
    assert not hidden.exists()
    assert all(name.isdigit() for name in _entries(base))

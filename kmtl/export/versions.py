"""Integer version directories under a model's base path, as TF Serving
sees them, and the hidden staging directories that never become visible
half written.

TF Serving loads only subdirectories whose whole name is decimal digits
(`base/1`, `base/2`, ...). The rules kmtl keeps, so that several exporters
(processes, hosts) can share one base path:

- **Staging.** An export is written into a hidden directory beside the
  versions, `.kmtl-export-<random>`, with a lease file beside it,
  `.kmtl-export-<random>.lease`, whose modification time the exporter
  renews every `HEARTBEAT_S` seconds while it works.
- **Publishing.** The staging directory is renamed to the next version
  number (one more than the largest all-digit name, complete or not), in
  one `os.rename`, atomic on a local filesystem (and on NFS within one
  directory). Renaming a directory onto a non-empty one fails, so when two
  exporters pick the same number one wins and the other takes the next
  number, up to `PUBLISH_ATTEMPTS` times. A version directory is therefore
  always complete when it appears.
- **Stale staging.** A staging directory is abandoned when neither it nor
  its lease has been modified for `STALE_AFTER_S` seconds (the owner died:
  `kill -9`, a lost host). Only then does another export remove it: first
  renamed to `.kmtl-deleting-<random>` (so that its owner, if it was only
  stalled, fails to publish it rather than publishing a half-deleted
  directory), then deleted. No process id is consulted: another host, or
  another container, cannot answer whether a pid is alive. The rule needs
  the hosts' clocks to agree to well within `STALE_AFTER_S`.
- **Complete versions.** A version directory counts as a good version only
  when it holds `saved_model.pb` (or `.pbtxt`) and, where it has
  `variables/`, a `variables.index` (`is_complete`). `keep_last` counts
  and deletes complete versions only: an empty or incomplete directory
  (not written by kmtl, which never shows one) is left alone and never
  makes a good version go.
- **Deleting.** A pruned version is first renamed to a hidden
  `.kmtl-deleting-` name, so TF Serving never sees it half deleted, then
  removed; what a failed removal leaves is removed by the next export.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pathlib
import re
import shutil
import threading
import time
import uuid
import warnings
from collections.abc import Iterator

from kmtl.warnings import KMTLWarning

_VERSION_NAME = re.compile(r"[0-9]+")
STAGING_PREFIX = ".kmtl-export-"
"""Prefix of the hidden directories an export is written into."""
DELETING_PREFIX = ".kmtl-deleting-"
"""Prefix of hidden directories being deleted (old versions, stale
staging): nobody uses them, any export may remove them."""
LEASE_SUFFIX = ".lease"
"""Suffix of the lease file beside a staging directory."""
# Staging names: `<prefix><32 hex>`, or kmtl's older `<prefix><pid>-<32 hex>`.
_STAGING_NAME = re.compile(
    re.escape(STAGING_PREFIX) + r"(?:[0-9]+-)?[0-9a-f]{32}"
)
_DELETING_NAME = re.compile(re.escape(DELETING_PREFIX) + r"[0-9a-f]{32}")

HEARTBEAT_S = 30.0
"""How often a running export renews its lease, in seconds."""
STALE_AFTER_S = 900.0
"""A staging directory whose lease has not been renewed for this long (15
minutes, 30 missed heartbeats) is abandoned and may be removed."""
PUBLISH_ATTEMPTS = 100
"""How many version numbers an export tries before giving up."""
# What `os.rename(directory, target)` raises when `target` is taken: a
# non-empty directory (EEXIST or ENOTEMPTY, by platform) or a file.
_TAKEN_ERRNOS = (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR)


def latest_version(base_path: str | os.PathLike) -> int | None:
    """Returns the largest integer version under a model's base path.

    Only directories whose whole name is decimal digits count, as in
    TF Serving; staging directories, files and other names are ignored.

    Args:
        base_path: str or path. The model's base path, e.g.
            `saved_models/mmoe`.

    Returns:
        The largest version number, or `None` when `base_path` does not
        exist or holds no version.

    Example:

    ```python
    kmtl.export(model, "saved_models/mmoe")  # saved_models/mmoe/1
    latest_version("saved_models/mmoe")  # 1
    latest_version("saved_models/none")  # None
    ```
    """
    return max(list_versions(base_path), default=None)


def list_versions(
    base_path: str | os.PathLike, *, complete: bool = False
) -> list[int]:
    """Returns the integer versions under a base path, in increasing order.

    Args:
        base_path: str or path. The model's base path.
        complete: bool. Only versions that `is_complete` accepts. Defaults
            to `False`: every all-digit directory, as TF Serving lists them.

    Returns:
        A sorted list of version numbers (empty when there are none).
    """
    base = pathlib.Path(base_path)
    if not base.is_dir():
        return []
    versions = []
    for child in base.iterdir():
        if not (_VERSION_NAME.fullmatch(child.name) and child.is_dir()):
            continue
        if complete and not is_complete(child):
            continue
        versions.append(int(child.name))
    return sorted(versions)


def is_complete(version_dir: str | os.PathLike) -> bool:
    """Whether a version directory holds a whole SavedModel.

    Args:
        version_dir: str or path. E.g. `saved_models/mmoe/3`.

    Returns:
        `True` when it has a non-empty `saved_model.pb` (or
        `saved_model.pbtxt`) and, if it has a `variables/` directory, a
        `variables/variables.index`.
    """
    path = pathlib.Path(version_dir)
    try:
        graphs = [path / "saved_model.pb", path / "saved_model.pbtxt"]
        if not any(g.is_file() and g.stat().st_size > 0 for g in graphs):
            return False
        variables = path / "variables"
        return not variables.is_dir() or (
            (variables / "variables.index").is_file()
        )
    except OSError:  # removed while we looked
        return False


def staging_directory(base_path: str | os.PathLike) -> pathlib.Path:
    """Returns a fresh hidden staging path beside the versions (not created).

    Args:
        base_path: str or path. The model's base path.

    Returns:
        `base_path/.kmtl-export-<random hex>`.
    """
    return pathlib.Path(base_path) / f"{STAGING_PREFIX}{uuid.uuid4().hex}"


def lease_path(staging: str | os.PathLike) -> pathlib.Path:
    """The lease file of a staging directory: `<staging>.lease`."""
    staging = pathlib.Path(staging)
    return staging.with_name(staging.name + LEASE_SUFFIX)


@contextlib.contextmanager
def staging_lease(
    staging: str | os.PathLike, heartbeat_s: float = HEARTBEAT_S
) -> Iterator[pathlib.Path]:
    """Holds the lease of a staging directory while the block runs.

    Creates `<staging>.lease`, renews its modification time every
    `heartbeat_s` seconds from a daemon thread, and removes it on exit.

    Args:
        staging: str or path. The staging directory (need not exist yet).
        heartbeat_s: float. Seconds between renewals. Defaults to
            `HEARTBEAT_S`.

    Yields:
        The lease file's path.
    """
    lease = lease_path(staging)
    lease.touch(exist_ok=False)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(heartbeat_s):
            with contextlib.suppress(OSError):
                os.utime(lease)

    thread = threading.Thread(
        target=renew, name=f"kmtl-lease-{lease.name}", daemon=True
    )
    thread.start()
    try:
        yield lease
    finally:
        stop.set()
        thread.join()
        with contextlib.suppress(OSError):
            lease.unlink()


def publish(staging: str | os.PathLike, base_path: str | os.PathLike) -> int:
    """Renames a complete staging directory to the next free version.

    Args:
        staging: str or path. A staging directory under `base_path`.
        base_path: str or path. The model's base path.

    Returns:
        The version number it now has.

    Raises:
        FileExistsError: if `PUBLISH_ATTEMPTS` numbers in a row were taken
            by other exporters first.
        FileNotFoundError: if the staging directory is gone (another
            export removed it as abandoned: its lease was older than
            `STALE_AFTER_S`).
    """
    staging = pathlib.Path(staging)
    base = pathlib.Path(base_path)
    taken: list[int] = []
    for _ in range(PUBLISH_ATTEMPTS):
        # Past the numbers found taken: a file named like a version is no
        # version (latest_version skips it) but still blocks the name.
        version = max(latest_version(base) or 0, *taken, 0) + 1
        try:
            os.rename(staging, base / str(version))
        except OSError as err:
            if not staging.is_dir():
                raise FileNotFoundError(
                    f"The staging directory {staging} disappeared before "
                    "it was published: another export removed it as "
                    f"abandoned (no lease renewal for {STALE_AFTER_S:g} s; "
                    "was this process stopped that long?). Nothing was "
                    "published; export again."
                ) from err
            if err.errno not in _TAKEN_ERRNOS:
                raise
            taken.append(version)  # another exporter published it first
            continue
        return version
    raise FileExistsError(
        f"Could not publish {staging} under {base}: the version numbers "
        f"{taken} were each taken by another export first. Nothing was "
        "published; export again."
    )


def remove_stale_staging(
    base_path: str | os.PathLike,
    *,
    stale_after_s: float = STALE_AFTER_S,
) -> list[pathlib.Path]:
    """Removes staging directories that are provably abandoned.

    A staging directory (and its lease file) is removed when neither has
    been modified for `stale_after_s` seconds; directories being deleted
    (`.kmtl-deleting-*`) are removed whatever their age. A staging
    directory in use by another exporter, on this host or another, renews
    its lease and is kept, and so is every name kmtl does not make.

    Args:
        base_path: str or path. The model's base path.
        stale_after_s: float. Defaults to `STALE_AFTER_S`.

    Returns:
        The removed paths (staging directories, orphaned lease files and
        directories being deleted).
    """
    base = pathlib.Path(base_path)
    if not base.is_dir():
        return []
    now = time.time()
    removed = []
    for child in sorted(base.iterdir()):
        name = child.name
        if _DELETING_NAME.fullmatch(name):
            shutil.rmtree(child, ignore_errors=True)
            removed.append(child)
            continue
        lease = name.endswith(LEASE_SUFFIX)
        stem = name[: -len(LEASE_SUFFIX)] if lease else name
        if not _STAGING_NAME.fullmatch(stem):
            continue
        staging = base / stem
        if lease and staging.exists():
            continue  # decided with its staging directory
        if now - _last_modified(staging) <= stale_after_s:
            continue
        if lease:
            with contextlib.suppress(OSError):
                child.unlink()
                removed.append(child)
            continue
        doomed = base / f"{DELETING_PREFIX}{uuid.uuid4().hex}"
        try:
            os.rename(staging, doomed)
        except OSError:  # removed by another export meanwhile
            continue
        shutil.rmtree(doomed, ignore_errors=True)
        with contextlib.suppress(OSError):
            lease_path(staging).unlink()
        removed.append(staging)
    return removed


def _last_modified(staging: pathlib.Path) -> float:
    """The latest mtime of a staging directory and its lease (0 if none)."""
    times = [0.0]
    for path in (staging, lease_path(staging)):
        with contextlib.suppress(OSError):
            times.append(path.stat().st_mtime)
    return max(times)


def prune_versions(
    base_path: str | os.PathLike, keep_last: int, *, protect: int
) -> list[int]:
    """Deletes all but the `keep_last` newest complete versions.

    Only complete versions (`is_complete`) are counted and deleted; the
    version `protect` is never deleted. Each deleted version is renamed to
    a hidden name first (atomic), then removed, so a server never loads a
    partly deleted version. A version that cannot be deleted is reported
    with a `KMTLWarning` naming its directory, and the others are still
    pruned.

    Args:
        base_path: str or path. The model's base path.
        keep_last: int, >= 1. How many of the newest complete versions to
            keep.
        protect: int. A version that is kept whatever its rank (the one
            just exported).

    Returns:
        The deleted version numbers.
    """
    if isinstance(keep_last, bool) or not isinstance(keep_last, int):
        raise ValueError(f"`keep_last` must be an int. Received: {keep_last!r}")
    if keep_last < 1:
        raise ValueError(
            f"`keep_last` must be at least 1. Received: keep_last={keep_last}"
        )
    base = pathlib.Path(base_path)
    good = list_versions(base, complete=True)
    doomed = good[: max(0, len(good) - keep_last)]
    deleted = []
    for version in doomed:
        if version == protect:
            continue
        source = base / str(version)
        hidden = base / f"{DELETING_PREFIX}{uuid.uuid4().hex}"
        try:
            os.rename(source, hidden)
        except FileNotFoundError:  # another export pruned it
            continue
        except OSError as err:
            warnings.warn(
                f"Could not delete the old version {source} (keep_last="
                f"{keep_last}): {err}. It is still served; delete it by "
                "hand.",
                KMTLWarning,
                stacklevel=2,
            )
            continue
        deleted.append(version)
        shutil.rmtree(hidden, ignore_errors=True)
        if hidden.exists():
            warnings.warn(
                f"The old version {source} was unpublished (renamed to "
                f"{hidden}) but not all of it could be deleted; the next "
                "export to this base path removes the rest.",
                KMTLWarning,
                stacklevel=2,
            )
    return deleted

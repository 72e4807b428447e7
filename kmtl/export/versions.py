"""Integer version directories under a model's base path, as TF Serving
sees them, and the hidden staging directories that never become visible
half written.

TF Serving loads only subdirectories whose whole name is decimal digits
(`base/1`, `base/2`, ...). An export is written into a hidden staging
directory beside them, `.kmtl-export-<pid>-<random>`, then renamed to its
version: `os.rename` within one directory is atomic on a local filesystem.
A process killed while exporting (`kill -9`) leaves its staging directory
behind; the next export to the same base path removes the staging
directories whose process is gone. A version deleted by `keep_last` is
first renamed to a hidden name, so TF Serving never sees it half deleted.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import uuid

_VERSION_NAME = re.compile(r"[0-9]+")
STAGING_PREFIX = ".kmtl-export-"
_STAGING_NAME = re.compile(re.escape(STAGING_PREFIX) + r"([0-9]+)-[0-9a-f]{32}")


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


def list_versions(base_path: str | os.PathLike) -> list[int]:
    """Returns the integer versions under a base path, in increasing order.

    Args:
        base_path: str or path. The model's base path.

    Returns:
        A sorted list of version numbers (empty when there are none).
    """
    base = pathlib.Path(base_path)
    if not base.is_dir():
        return []
    return sorted(
        int(child.name)
        for child in base.iterdir()
        if _VERSION_NAME.fullmatch(child.name) and child.is_dir()
    )


def staging_directory(base_path: str | os.PathLike) -> pathlib.Path:
    """Returns a fresh hidden staging path beside the versions (not created).

    Args:
        base_path: str or path. The model's base path.

    Returns:
        `base_path/.kmtl-export-<pid>-<random hex>`.
    """
    name = f"{STAGING_PREFIX}{os.getpid()}-{uuid.uuid4().hex}"
    return pathlib.Path(base_path) / name


def remove_stale_staging(base_path: str | os.PathLike) -> list[pathlib.Path]:
    """Removes the staging directories left by exports that were killed.

    A staging directory is stale when the process named in it no longer
    runs on this machine; those of live processes (an export under way)
    are kept, and so is every name not made by `staging_directory`.

    Args:
        base_path: str or path. The model's base path.

    Returns:
        The removed paths.
    """
    base = pathlib.Path(base_path)
    if not base.is_dir():
        return []
    removed = []
    for child in base.iterdir():
        match = _STAGING_NAME.fullmatch(child.name)
        if match and not _process_alive(int(match.group(1))):
            shutil.rmtree(child, ignore_errors=True)
            removed.append(child)
    return removed


def prune_versions(
    base_path: str | os.PathLike, keep_last: int, *, protect: int
) -> list[int]:
    """Deletes all but the `keep_last` newest versions, never `protect`.

    Each deleted version is renamed to a hidden staging name first (atomic),
    then removed, so a server never loads a partly deleted version.

    Args:
        base_path: str or path. The model's base path.
        keep_last: int, >= 1. How many of the newest versions to keep.
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
    existing = list_versions(base)
    doomed = existing[: max(0, len(existing) - keep_last)]
    deleted = []
    for version in doomed:
        if version == protect:
            continue
        hidden = staging_directory(base)
        os.rename(base / str(version), hidden)
        shutil.rmtree(hidden, ignore_errors=True)
        deleted.append(version)
    return deleted


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

"""What the benchmark scripts add to kmtl's portable timing on this kind of
machine (Linux, shared by several users): an exclusive `flock` held while
timing, so that two benchmark runs never time at the same time, and the
share of the CPU other processes used meanwhile (from `/proc/stat`), so
that a figure taken under load is flagged as noisy.

The scripts beside this file import it by its name (their folder is on
`sys.path` when they run). It needs only the standard library at import
time; `time_model_locked` imports kmtl when called.

    from harness import DEFAULT_LOCK, OtherLoad, bench_lock

    with bench_lock(DEFAULT_LOCK), OtherLoad() as load:
        model.fit(ds, epochs=3)
    print(load.share)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

if TYPE_CHECKING:
    from kmtl.data.ae_synth import AESynthData
    from kmtl.features.spec import FeatureSpec
    from kmtl.training.speed import SpeedResult

DEFAULT_LOCK = "/tmp/kmtl-bench.lock"
# Above this share of the machine's CPU used by other processes during a
# timed part, a figure is flagged as noisy.
NOISY_LOAD = 0.05


@contextlib.contextmanager
def bench_lock(path: str | None) -> Iterator[None]:
    """Holds an exclusive `flock` on `path` (waiting for it if needed), so
    that two timed benchmark runs on the machine never overlap.

    Args:
        path: str. The lock file; `None` or `""` takes no lock.

    Example:

    ```python
    with bench_lock(DEFAULT_LOCK):
        model.fit(ds, epochs=3)
    ```
    """
    if not path:
        yield
        return
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"  (waiting for the benchmark lock {path})", flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class OtherLoad:
    """Share of the machine's CPU time used by other processes while the
    block runs: `share` is 0 to 1, or `None` where `/proc/stat` is missing
    (and before the block has ended).

    Example:

    ```python
    with OtherLoad() as load:
        model.predict(ds)
    print(load.share)
    ```
    """

    def __init__(self) -> None:
        self.share: float | None = None

    def __enter__(self) -> OtherLoad:
        self.share = None
        self._start = (_cpu_ticks(), os.times())
        return self

    def __exit__(self, *exc: object) -> None:
        ticks, own = _cpu_ticks(), os.times()
        if ticks is None or self._start[0] is None:
            return
        total = ticks[0] - self._start[0][0]
        busy = total - (ticks[1] - self._start[0][1])
        before = self._start[1]
        mine = (own.user - before.user + own.system - before.system) * (
            os.sysconf("SC_CLK_TCK")
        )
        self.share = max(0.0, (busy - mine) / total) if total > 0 else 0.0


def _cpu_ticks() -> tuple[int, int] | None:
    """(all, idle + iowait) clock ticks of the machine since boot."""
    try:
        with open("/proc/stat") as handle:
            values = [int(v) for v in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(values), values[3] + values[4]


def largest(values: Sequence[float | None]) -> float | None:
    """The largest known value (`None` where none is known)."""
    known = [v for v in values if v is not None]
    return max(known) if known else None


def time_model_locked(
    name: str,
    spec: FeatureSpec,
    train: AESynthData,
    evaluation: AESynthData,
    *,
    lock: str | None = DEFAULT_LOCK,
    **kwargs: Any,
) -> tuple[SpeedResult, float | None]:
    """`kmtl.training.speed.time_model` under the benchmark lock, with the
    other processes' CPU share measured over each timed part.

    Args:
        name, spec, train, evaluation, **kwargs: `time_model`'s arguments
            (all but `watch`).
        lock: str. `flock` file held for the whole call (building the
            model, its warm-up and timed parts); `None` or `""` for none.
            Defaults to `DEFAULT_LOCK`.

    Returns:
        (`SpeedResult`, the largest other load over the timed parts, or
        `None` where it could not be measured).

    Example:

    ```python
    result, load = time_model_locked(
        "mmoe", spec, train, evaluation, epochs=2
    )
    ```
    """
    from kmtl.training.speed import time_model

    loads: list[OtherLoad] = []

    def watch() -> OtherLoad:
        loads.append(OtherLoad())
        return loads[-1]

    with bench_lock(lock):
        result = time_model(
            name, spec, train, evaluation, watch=watch, **kwargs
        )
    return result, largest([load.share for load in loads])

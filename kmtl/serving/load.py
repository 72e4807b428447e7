"""A bounded load run against TF Serving: threads of `Client`s, each
sending a fixed list of requests, good and bad, and what came back.

`run_load` is what `tests/serving/test_load.py` asserts on and
`benchmarks/serving_load.py` prints: per protocol, the errors on good
requests (there should be none), the bad requests not answered with a
`ServingError` naming their feature (there should be none), p50 / p99
latency of the good ones, and how many connections the clients opened.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import numpy as np

from kmtl.export.signatures import SIGNATURE_KEY
from kmtl.features.spec import FeatureSpec
from kmtl.serving.client import Client
from kmtl.serving.client import ServingError


@dataclasses.dataclass(frozen=True)
class LoadCall:
    """One request of a load run.

    Args:
        data: DataFrame or dict of columns. The features sent.
        signature_name: str. Defaults to `"serving_default"`.
        format: str. REST body format (`"inputs"` or `"instances"`).
            Defaults to `"inputs"`.
        expect_error: str or None. For a bad request, the name its
            `ServingError` message must hold (the feature at fault);
            `None` for a good request. Defaults to `None`.
    """

    data: Any
    signature_name: str = SIGNATURE_KEY
    format: str = "inputs"
    expect_error: str | None = None


UNKNOWN_FEATURE = "kmtl_unknown_feature"
"""The input name a bad request of `mixed_calls` adds."""


def mixed_calls(
    spec: FeatureSpec,
    protocol: str,
    *,
    distinct: int = 40,
    bad_every: int = 10,
    max_rows: int = 4,
    seed: int = 100,
) -> list[LoadCall]:
    """`distinct` requests of 1 to `max_rows` synthetic rows, one in
    `bad_every` bad.

    The bad ones alternate a missing input (the first that is not the
    scenario column) and an unknown one (`UNKNOWN_FEATURE`): both are
    refused by TF Serving with a message naming the input. Over REST, one
    good request in five is sent as `instances`, and the unknown feature
    always is (TF Serving ignores an unknown key of a columnar `inputs`
    object). A wrongly typed value is not used: TF Serving's message for
    it names the value, not the input.

    Args:
        spec: FeatureSpec. The served model's spec.
        protocol: str. `"rest"` or `"grpc"`.
        distinct: int. Requests in the list. Defaults to 40.
        bad_every: int. One bad request per `bad_every`. Defaults to 10.
        max_rows: int. Largest batch. Defaults to 4.
        seed: int. Seed of the first request's rows. Defaults to 100.

    Returns:
        A list of `LoadCall`, without a spec's conversions: send them with
        a client without `spec`, so that bad ones reach the server.
    """
    from kmtl.export.sample import synthetic_rows

    scenario = spec.scenario.name if spec.scenario is not None else None
    missing = next(n for n in spec.serving_input_names if n != scenario)
    calls = []
    bad = 0
    for i in range(distinct):
        rows = synthetic_rows(spec, 1 + i % max_rows, seed=seed + i)
        if i % bad_every == bad_every // 2:
            if bad % 2 == 0:
                del rows[missing]
                calls.append(LoadCall(rows, expect_error=missing))
            else:
                size = len(next(iter(rows.values())))
                rows[UNKNOWN_FEATURE] = np.asarray(["x"] * size, object)
                format = "instances" if protocol == "rest" else "inputs"
                calls.append(
                    LoadCall(rows, format=format, expect_error=UNKNOWN_FEATURE)
                )
            bad += 1
        else:
            as_rows = protocol == "rest" and i % 5 == 1
            calls.append(
                LoadCall(rows, format="instances" if as_rows else "inputs")
            )
    return calls


@dataclasses.dataclass
class LoadReport:
    """What a load run saw.

    Attributes:
        protocol: str. `"rest"` or `"grpc"`.
        threads: int. Concurrent threads (one client each, unless shared).
        good_ms: np.ndarray. Latency of each good request, in ms.
        bad_ms: np.ndarray. Latency of each bad request, in ms.
        good_errors: list of str. Errors raised by good requests.
        bad_unnamed: list of str. Bad requests answered otherwise than
            with a `ServingError` naming their feature.
        wall_s: float. Seconds from the first request to the last answer.
        connections: int or None. TCP connections the clients opened
            (REST: counted by the clients' pools; gRPC: `None`, counted
            by the server where it can).
    """

    protocol: str
    threads: int
    good_ms: np.ndarray
    bad_ms: np.ndarray
    good_errors: list[str]
    bad_unnamed: list[str]
    wall_s: float
    connections: int | None

    @property
    def requests(self) -> int:
        return len(self.good_ms) + len(self.bad_ms)

    @property
    def p50(self) -> float:
        return float(np.percentile(self.good_ms, 50))

    @property
    def p99(self) -> float:
        return float(np.percentile(self.good_ms, 99))

    def summary(self) -> str:
        """One line of figures."""
        connections = "n/a" if self.connections is None else self.connections
        return (
            f"{self.protocol:<4} {self.threads} threads x "
            f"{self.requests // self.threads} requests "
            f"({len(self.bad_ms)} bad): good p50 {self.p50:.2f} ms, "
            f"p99 {self.p99:.2f} ms, max {self.good_ms.max():.1f} ms; "
            f"errors on good {len(self.good_errors)}, bad not named "
            f"{len(self.bad_unnamed)}; {self.requests / self.wall_s:.0f} "
            f"req/s; connections opened {connections}"
        )


def run_load(
    make_client: Callable[[], Client],
    calls: Sequence[LoadCall],
    *,
    threads: int = 8,
    per_thread: int = 500,
    shared: bool = False,
) -> LoadReport:
    """Runs `threads` threads of `per_thread` requests each.

    Thread `t` sends `calls[(t * len(calls) // threads + i) % len(calls)]`
    for `i < per_thread` (the threads start at different places of the
    list), so the share of bad requests is that of `calls` when
    `per_thread` is a multiple of `len(calls)`.

    Args:
        make_client: callable returning a new `Client`.
        calls: sequence of `LoadCall`.
        threads: int. Concurrent threads. Defaults to 8.
        per_thread: int. Requests per thread. Defaults to 500.
        shared: bool. One client for all threads (it is thread-safe)
            instead of one per thread. Defaults to `False`.

    Returns:
        A `LoadReport`.
    """
    if threads < 1 or per_thread < 1 or not calls:
        raise ValueError(
            "`threads` and `per_thread` must be positive and `calls` not "
            f"empty. Received: threads={threads}, per_thread={per_thread}, "
            f"{len(calls)} calls"
        )
    if shared:
        clients = [make_client()] * threads
    else:
        clients = [make_client() for _ in range(threads)]
    protocol = clients[0].protocol
    good: list[float] = []
    bad: list[float] = []
    good_errors: list[str] = []
    bad_unnamed: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(threads + 1)

    def work(index: int) -> None:
        client = clients[index]
        offset = index * len(calls) // threads
        mine_good, mine_bad, mine_errors, mine_unnamed = [], [], [], []
        start.wait()
        for i in range(per_thread):
            call = calls[(offset + i) % len(calls)]
            began = time.perf_counter()
            error: BaseException | None = None
            try:
                client.predict(
                    call.data, call.signature_name, format=call.format
                )
            except Exception as err:  # noqa: BLE001 - each one is counted
                error = err
            elapsed = (time.perf_counter() - began) * 1e3
            if call.expect_error is None:
                mine_good.append(elapsed)
                if error is not None:
                    mine_errors.append(f"{type(error).__name__}: {error}")
            else:
                mine_bad.append(elapsed)
                named = isinstance(error, ServingError) and (
                    call.expect_error in str(error)
                )
                if not named:
                    what = (
                        "no error"
                        if error is None
                        else f"{type(error).__name__}: {error}"
                    )
                    mine_unnamed.append(f"{call.expect_error}: {what}")
        with lock:
            good.extend(mine_good)
            bad.extend(mine_bad)
            good_errors.extend(mine_errors)
            bad_unnamed.extend(mine_unnamed)

    workers = [
        threading.Thread(target=work, args=(i,), daemon=True)
        for i in range(threads)
    ]
    for worker in workers:
        worker.start()
    start.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
    wall = time.perf_counter() - began
    distinct = list({id(c): c for c in clients}.values())
    opened = [c.connections_opened for c in distinct]
    connections = None if None in opened else sum(opened)
    for client in distinct:
        client.close()
    return LoadReport(
        protocol=protocol,
        threads=threads,
        good_ms=np.asarray(good),
        bad_ms=np.asarray(bad),
        good_errors=good_errors,
        bad_unnamed=bad_unnamed,
        wall_s=wall,
        connections=connections,
    )

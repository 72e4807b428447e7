"""A bounded load test of `kmtl.serving.Client`: 8 concurrent clients over
REST and over gRPC on loopback, one request in ten bad.

The requests are `kmtl.serving.load.mixed_calls`: good ones (1 to 4 rows,
REST in `inputs` and `instances`) must all succeed; each bad one must come
back as a `ServingError` naming its feature. The bad ones are those TF
Serving itself names: a missing input (REST: "Missing named input: user_id
in 'inputs' object."; gRPC: "input size does not match signature ...
Missing but required: {user_id}.") and an unknown one (gRPC: "Sent extra:
{kmtl_unknown_feature}"; REST in `instances`: "does not have named input:
kmtl_unknown_feature"; TF Serving ignores an unknown key of a columnar
`inputs` object, so REST sends those in `instances`). A wrongly typed JSON
value is not among them: TF Serving's message names the value, not the
input.

Connections must be reused: the clients open at most two per thread (not
one per request), counted by the clients (REST) and by the test double
(REST connections accepted, distinct gRPC peers). p99 must not be
dominated by connection set-up or listen-queue stalls (about 1 s for a
SYN retransmit): p99 < max(10 x p50, 500 ms), generous on a shared 2-core
machine. The figures are printed (`pytest -s`).

The default run is 8 x 40 requests per protocol (a few seconds); the slow
one 8 x 500. Both run against the test double, and against
`tensorflow_model_server` when it is on PATH (skipped otherwise).
"""

import dataclasses
from collections.abc import Callable

import pytest

from kmtl.serving import Client
from kmtl.serving.load import mixed_calls
from kmtl.serving.load import run_load
from tests.serving.conftest import MODEL_NAME

THREADS = 8
FAST_PER_THREAD = 40
SLOW_PER_THREAD = 500
CONNECTIONS_PER_THREAD = 2


@dataclasses.dataclass
class Server:
    kind: str
    rest_port: int
    grpc_port: int
    connections: Callable[[], dict[str, int]] | None  # test double only


@pytest.fixture(params=["fake", "real"])
def server(request):
    if request.param == "fake":
        fake = request.getfixturevalue("fake_server")
        return Server("fake", fake.rest_port, fake.grpc_port, fake.connections)
    real = request.getfixturevalue("real_server")  # skips without binary
    return Server("real", real.rest_port, real.grpc_port, None)


def _check_load(server: Server, spec, protocol: str, per_thread: int):
    port = server.rest_port if protocol == "rest" else server.grpc_port
    calls = mixed_calls(spec, protocol)
    before = server.connections() if server.connections else None
    report = run_load(
        lambda: Client(
            f"127.0.0.1:{port}", MODEL_NAME, protocol=protocol, timeout=30
        ),
        calls,
        threads=THREADS,
        per_thread=per_thread,
    )
    accepted = None
    if before is not None:
        accepted = server.connections()[protocol] - before[protocol]
    print(
        f"\n[{server.kind}] {report.summary()}; server-side new "
        f"connections {'n/a' if accepted is None else accepted}"
    )
    assert report.good_errors == [], report.good_errors[:3]
    assert report.bad_unnamed == [], report.bad_unnamed[:3]
    bad_share = len(report.bad_ms) / report.requests
    assert 0.09 <= bad_share <= 0.11, bad_share
    most = CONNECTIONS_PER_THREAD * THREADS
    if report.connections is not None:
        assert report.connections <= most
    if accepted is not None:
        assert accepted <= most
    assert report.p99 < max(10 * report.p50, 500.0), report.summary()
    return report


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_load(server, served_spec, protocol):
    _check_load(server, served_spec, protocol, FAST_PER_THREAD)


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_load_slow(server, served_spec, protocol):
    _check_load(server, served_spec, protocol, SLOW_PER_THREAD)

"""p50 / p99 latency and errors of `kmtl.serving.Client` under concurrent
load, over REST and gRPC (figures, not a test).

Usage:

    python benchmarks/serving_load.py [--concurrency 8] [--requests 500]
        [--protocols rest,grpc] [--server fake|real] [--base PATH]
        [--shared] [--lock /tmp/kmtl-bench.lock] [--json out.json]
    python benchmarks/serving_load.py --rest HOST:8501 --grpc HOST:8500 \\
        --model-name mmoe --base saved_models/mmoe   # a running server

Each of `--concurrency` threads has its own `Client` (one for all with
`--shared`) and sends `--requests` requests from
`kmtl.serving.load.mixed_calls`: 1 to 4 synthetic rows, REST bodies in
`inputs` and `instances`, one request in ten bad (a missing or an unknown
input, which the server must refuse with a message naming it). Printed per
protocol: errors on good requests, bad requests not answered with a
`ServingError` naming their feature, p50 / p99 / max latency of the good
ones, requests per second, and TCP connections (opened by the REST clients;
accepted by the test double, REST and gRPC peers).

The model: `--base` (a `kmtl.export` base path; the spec is read from its
latest version), else an untrained MMoE on `kmtl.data.make_synthetic`'s
columns exported to a temporary directory (latency does not depend on the
weights). The server: `fake` (default) is the test double
`tests/serving/fake_model_server.py` in a child process, so that the
clients do not share its interpreter; `real` starts `tensorflow_model_server`
from PATH with `kmtl serve-config`'s files. Client and server share the
machine's cores: on a 2-core machine the figures are the whole loop's, not
the server's alone.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from harness import DEFAULT_LOCK  # noqa: E402
from harness import bench_lock  # noqa: E402

import kmtl  # noqa: E402
from kmtl.export import list_versions  # noqa: E402
from kmtl.export import load_spec  # noqa: E402
from kmtl.serving import Client  # noqa: E402
from kmtl.serving.config import write_serving_config  # noqa: E402
from kmtl.serving.load import mixed_calls  # noqa: E402
from kmtl.serving.load import run_load  # noqa: E402

MODEL_NAME = "bench"


def _export_default(work: pathlib.Path) -> pathlib.Path:
    """An untrained MMoE on the synthetic columns, exported once."""
    frame, _ = kmtl.data.make_synthetic(2_000, seed=0)
    spec = kmtl.FeatureSpec.from_dataframe(
        frame,
        labels={"ctr": "click", "cvr": "purchase"},
        scenario="scenario",
        sample_spaces={"cvr": "ctr"},
        embedding_dim=8,
    )
    model = kmtl.build(
        "mmoe", spec, num_experts=4, expert_units=(32,), tower_units=(16,)
    )
    base = work / MODEL_NAME
    kmtl.export(model, base, sample=frame[:64])
    return base


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _FakeServer:
    """The test double in a child process."""

    def __init__(self, base: pathlib.Path) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.serving.fake_model_server",
                MODEL_NAME,
                str(base),
            ],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        ports = json.loads(self.process.stdout.readline())
        self.rest = f"127.0.0.1:{ports['rest_port']}"
        self.grpc = f"127.0.0.1:{ports['grpc_port']}"

    def connections(self) -> dict[str, int]:
        self.process.stdin.write("connections\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def stop(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


class _RealServer:
    """`tensorflow_model_server` from PATH."""

    def __init__(self, base: pathlib.Path, work: pathlib.Path) -> None:
        if shutil.which("tensorflow_model_server") is None:
            raise SystemExit(
                "--server real: tensorflow_model_server is not on PATH"
            )
        config = write_serving_config(
            work / "config",
            {MODEL_NAME: base},
            grpc_port=_free_port(),
            rest_port=_free_port(),
        )
        self.log = open(work / "tensorflow_model_server.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            config.server_command(), stdout=self.log, stderr=subprocess.STDOUT
        )
        self.rest = f"127.0.0.1:{config.rest_port}"
        self.grpc = f"127.0.0.1:{config.grpc_port}"
        Client(self.rest, MODEL_NAME).wait_until_available(120)

    def connections(self) -> None:
        return None

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--protocols", default="rest,grpc")
    parser.add_argument("--server", choices=("fake", "real"), default="fake")
    parser.add_argument("--base", type=pathlib.Path)
    parser.add_argument("--rest", help="HOST:PORT of a running server")
    parser.add_argument("--grpc", help="HOST:PORT of a running server")
    parser.add_argument("--model-name", default=MODEL_NAME)
    parser.add_argument("--shared", action="store_true")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--lock", default=DEFAULT_LOCK)
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args(argv)

    work = pathlib.Path(tempfile.mkdtemp(prefix="kmtl-serving-load-"))
    running = args.rest or args.grpc
    if running and args.base is None:
        parser.error("--rest / --grpc need --base (for the spec)")
    base = args.base or _export_default(work)
    spec = load_spec(pathlib.Path(base) / str(max(list_versions(base))))
    model_name = args.model_name if running else MODEL_NAME
    server = None
    if not running:
        server = (
            _FakeServer(base)
            if args.server == "fake"
            else _RealServer(pathlib.Path(base), work)
        )
    addresses = {
        "rest": args.rest or (server.rest if server else None),
        "grpc": args.grpc or (server.grpc if server else None),
    }
    figures = {}
    try:
        for protocol in args.protocols.split(","):
            address = addresses[protocol]
            if address is None:
                continue
            calls = mixed_calls(spec, protocol)
            before = server.connections() if server else None
            with bench_lock(args.lock):
                load = os.getloadavg()[0]
                report = run_load(
                    lambda p=protocol, a=address: Client(
                        a, model_name, protocol=p, timeout=args.timeout
                    ),
                    calls,
                    threads=args.concurrency,
                    per_thread=args.requests,
                    shared=args.shared,
                )
            after = server.connections() if server else None
            accepted = (
                after[protocol] - before[protocol]
                if before is not None
                else None
            )
            figures[protocol] = {
                "threads": args.concurrency,
                "requests": report.requests,
                "bad_requests": len(report.bad_ms),
                "errors_on_good": len(report.good_errors),
                "bad_not_named": len(report.bad_unnamed),
                "p50_ms": round(report.p50, 3),
                "p99_ms": round(report.p99, 3),
                "max_ms": round(float(report.good_ms.max()), 3),
                "requests_per_s": round(report.requests / report.wall_s, 1),
                "connections_opened_by_clients": report.connections,
                "connections_accepted_by_server": accepted,
                "load_average_before": load,
            }
            print(
                f"{report.summary()}; server-side connections "
                f"{'n/a' if accepted is None else accepted} "
                f"(load average before {load:.2f})",
                flush=True,
            )
            for line in (report.good_errors + report.bad_unnamed)[:3]:
                print(f"    {line[:300]}")
            time.sleep(0.5)
    finally:
        if server is not None:
            server.stop()
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()

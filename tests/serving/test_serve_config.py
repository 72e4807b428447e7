"""`kmtl serve-config`: TF Serving's models.config and batching parameters,
checked by parsing them with tensorflow-serving-api's protos."""

import shlex

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from kmtl.cli import main
from kmtl.serving.config import Batching
from kmtl.serving.config import parse_version_policy
from kmtl.serving.config import write_serving_config


def _parse(path):
    return text_format.Parse(
        path.read_text(), model_server_config_pb2.ModelServerConfig()
    )


def _base_path(path):
    """A model base path with one complete version (a stand-in graph)."""
    (path / "1").mkdir(parents=True)
    (path / "1" / "saved_model.pb").write_bytes(b"graph")
    return path


def test_cli_writes_both_files_and_prints_the_commands(tmp_path, capsys):
    _base_path(tmp_path / "mmoe")
    _base_path(tmp_path / "ple_models")
    out = tmp_path / "serving"
    code = main(
        [
            "serve-config",
            str(tmp_path / "mmoe"),
            f"ple={tmp_path / 'ple_models'}",
            "--out",
            str(out),
            "--version-policy",
            "latest:2",
            "--max-batch-size",
            "64",
            "--num-batch-threads",
            "3",
            "--rest-port",
            "9501",
        ]
    )
    assert code == 0
    config = _parse(out / "models.config")
    entries = config.model_config_list.config
    assert [e.name for e in entries] == ["mmoe", "ple"]
    assert entries[0].base_path == str((tmp_path / "mmoe").resolve())
    assert entries[1].base_path == str((tmp_path / "ple_models").resolve())
    assert {e.model_platform for e in entries} == {"tensorflow"}
    assert entries[0].model_version_policy.latest.num_versions == 2
    assert (out / "batching_parameters.txt").read_text() == (
        "max_batch_size { value: 64 }\n"
        "batch_timeout_micros { value: 1000 }\n"
        "num_batch_threads { value: 3 }\n"
        "max_enqueued_batches { value: 100 }\n"
    )

    printed = capsys.readouterr().out
    commands = [
        shlex.split(line) for line in printed.splitlines() if "--port" in line
    ]
    local, cpu, gpu = commands
    flags = [
        "--port=8500",
        "--rest_api_port=9501",
        f"--model_config_file={out.resolve() / 'models.config'}",
        "--enable_batching=true",
        "--batching_parameters_file="
        f"{out.resolve() / 'batching_parameters.txt'}",
    ]
    assert local == ["tensorflow_model_server", *flags]
    assert cpu[:3] == ["docker", "run", "--rm"]
    assert "tensorflow/serving" in cpu and "--gpus" not in cpu
    assert cpu[-len(flags) :] == flags
    assert gpu[3:5] == ["--gpus", "all"]
    assert "tensorflow/serving:latest-gpu" in gpu
    # Paths are mounted where models.config names them.
    mounts = [gpu[i + 1] for i, arg in enumerate(gpu) if arg == "-v"]
    for path in (tmp_path / "mmoe", tmp_path / "ple_models", out):
        resolved = path.resolve()
        assert f"{resolved}:{resolved}:ro" in mounts
    assert "9501:9501" in gpu


@pytest.mark.parametrize(
    "policy, expected",
    [
        ("latest", {"latest": {"num_versions": 1}}),
        ("latest:3", {"latest": {"num_versions": 3}}),
        ("all", {"all": {}}),
        ("specific:1,4", {"specific": {"versions": [1, 4]}}),
    ],
)
def test_version_policies(tmp_path, policy, expected):
    assert parse_version_policy(policy) == expected
    config = write_serving_config(
        tmp_path, {"m": _base_path(tmp_path / "m")}, version_policy=policy
    )
    entry = _parse(config.models_config).model_config_list.config[0]
    assert entry.model_version_policy.WhichOneof("policy_choice") == next(
        iter(expected)
    )
    if policy.startswith("specific"):
        assert list(entry.model_version_policy.specific.versions) == [1, 4]


@pytest.mark.parametrize(
    "policy", ["latest:0", "newest", "specific:", "specific:a", "all:2"]
)
def test_bad_version_policy_is_an_error(tmp_path, capsys, policy):
    code = main(
        ["serve-config", str(tmp_path), "--out", str(tmp_path / "s")]
        + ["--version-policy", policy]
    )
    assert code == 2
    assert "version policy" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_bad_batching_and_ports_are_named(tmp_path):
    with pytest.raises(ValueError, match="max_batch_size=0"):
        Batching(max_batch_size=0)
    with pytest.raises(ValueError, match="ports must differ"):
        write_serving_config(
            tmp_path, {"m": tmp_path}, grpc_port=8500, rest_port=8500
        )


def test_paths_tf_serving_cannot_load_are_refused(tmp_path, capsys):
    base = _base_path(tmp_path / "mmoe")
    (tmp_path / "empty").mkdir()
    cases = {
        tmp_path / "missing": "is not a directory",
        base / "1": "is a version directory",
        tmp_path / "empty": "holds no complete version",
    }
    for path, message in cases.items():
        out = tmp_path / "s"
        code = main(["serve-config", str(path), "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and message in err, err
        assert not out.exists()

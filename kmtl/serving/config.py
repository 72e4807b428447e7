"""TF Serving configuration files and the commands that start the server.

`write_serving_config` writes, into one directory:

- `models.config`: a `ModelServerConfig` text proto (`model_config_list`),
  one entry per model: its name, absolute base path and version policy;
- `batching_parameters.txt`: a `BatchingParameters` text proto for
  `--enable_batching`.

`server_command` and `docker_command` give the `tensorflow_model_server`
command line and the `docker run` commands (CPU `tensorflow/serving`, GPU
`tensorflow/serving:latest-gpu` with `--gpus all`) that serve them. The
docker commands mount each base path and the config directory at the same
absolute path inside the container, so one `models.config` serves both.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shlex
from collections.abc import Mapping

MODELS_CONFIG = "models.config"
BATCHING_PARAMETERS = "batching_parameters.txt"
GRPC_PORT = 8500
REST_PORT = 8501
CPU_IMAGE = "tensorflow/serving"
GPU_IMAGE = "tensorflow/serving:latest-gpu"


@dataclasses.dataclass(frozen=True)
class Batching:
    """Server-side batching of concurrent requests (`BatchingParameters`).

    Args:
        max_batch_size: int. Largest batch the server forms. Defaults to
            256.
        batch_timeout_micros: int. Longest wait for a batch to fill, in
            microseconds. Defaults to 1000.
        num_batch_threads: int. Batches run in parallel. Defaults to the
            number of CPU cores.
        max_enqueued_batches: int. Queue length before requests are
            refused. Defaults to 100.
    """

    max_batch_size: int = 256
    batch_timeout_micros: int = 1000
    num_batch_threads: int = dataclasses.field(
        default_factory=lambda: os.cpu_count() or 1
    )
    max_enqueued_batches: int = 100

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            minimum = 0 if field.name == "batch_timeout_micros" else 1
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or value < minimum
            ):
                raise ValueError(
                    f"Batching: `{field.name}` must be an int >= {minimum}. "
                    f"Received: {field.name}={value!r}"
                )

    def to_text(self) -> str:
        """The `BatchingParameters` text proto."""
        return "".join(
            f"{field.name} {{ value: {getattr(self, field.name)} }}\n"
            for field in dataclasses.fields(self)
        )


def parse_version_policy(policy: str) -> dict:
    """Parses a version policy: `latest`, `latest:N`, `all`, `specific:1,2`.

    Args:
        policy: str. TF Serving serves the newest version (`latest`), the
            newest N (`latest:N`), every version (`all`), or the listed
            ones (`specific:1,2`).

    Returns:
        The `ServableVersionPolicy` as a dict, e.g.
        `{"latest": {"num_versions": 2}}`.

    Example:

    >>> parse_version_policy("specific:1,3")
    {'specific': {'versions': [1, 3]}}
    """
    kind, _, arg = policy.partition(":")
    try:
        if kind == "latest":
            number = int(arg) if arg else 1
            if number >= 1:
                return {"latest": {"num_versions": number}}
        elif kind == "all" and not arg:
            return {"all": {}}
        elif kind == "specific" and arg:
            numbers = [int(v) for v in arg.split(",")]
            if all(n >= 1 for n in numbers):
                return {"specific": {"versions": numbers}}
    except ValueError:
        pass
    raise ValueError(
        "A version policy is `latest`, `latest:N` (N >= 1), `all` or "
        f"`specific:V1,V2,...`. Received: {policy!r}"
    )


def model_config(
    models: Mapping[str, str | os.PathLike], version_policy: str = "latest"
) -> str:
    """Returns the `models.config` text proto of some models.

    Args:
        models: dict model name -> base path (made absolute).
        version_policy: str. As for `parse_version_policy`, for every
            model. Defaults to `"latest"`.

    Returns:
        A `ModelServerConfig` in text format, checked by parsing it with
        tensorflow-serving-api's proto.

    Example:

    ```python
    print(model_config({"mmoe": "saved_models/mmoe"}, "latest:2"))
    # model_config_list {
    #   config {
    #     name: "mmoe"
    #     base_path: "/abs/saved_models/mmoe"
    #     model_platform: "tensorflow"
    #     model_version_policy { latest { num_versions: 2 } } ...
    ```
    """
    from google.protobuf import json_format
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    if not models:
        raise ValueError("`models` is empty: give at least one model.")
    policy = parse_version_policy(version_policy)
    config = model_server_config_pb2.ModelServerConfig()
    for name, base_path in models.items():
        if not name or "/" in name or name != name.strip():
            raise ValueError(
                f"A model name must be non-empty, without '/' or spaces "
                f"around it. Received: {name!r}"
            )
        entry = config.model_config_list.config.add()
        entry.name = name
        entry.base_path = str(pathlib.Path(base_path).resolve())
        entry.model_platform = "tensorflow"
        json_format.ParseDict(policy, entry.model_version_policy)
    return text_format.MessageToString(config)


@dataclasses.dataclass(frozen=True)
class ServingConfig:
    """The files written by `write_serving_config` and what they serve.

    Attributes:
        directory: path. Where the files are (absolute).
        models: dict model name -> absolute base path.
        grpc_port: int. gRPC port of the server.
        rest_port: int. REST port of the server.
    """

    directory: pathlib.Path
    models: dict[str, pathlib.Path]
    grpc_port: int = GRPC_PORT
    rest_port: int = REST_PORT

    @property
    def models_config(self) -> pathlib.Path:
        return self.directory / MODELS_CONFIG

    @property
    def batching_parameters(self) -> pathlib.Path:
        return self.directory / BATCHING_PARAMETERS

    def server_args(self) -> list[str]:
        """The flags of `tensorflow_model_server` for these files."""
        return [
            f"--port={self.grpc_port}",
            f"--rest_api_port={self.rest_port}",
            f"--model_config_file={self.models_config}",
            "--enable_batching=true",
            f"--batching_parameters_file={self.batching_parameters}",
        ]

    def server_command(self) -> list[str]:
        """`tensorflow_model_server` with `server_args()`."""
        return ["tensorflow_model_server", *self.server_args()]

    def docker_command(self, gpu: bool = False) -> list[str]:
        """`docker run` of the CPU or GPU TF Serving image.

        Args:
            gpu: bool. Use `tensorflow/serving:latest-gpu` with
                `--gpus all`. Defaults to `False`.

        Returns:
            The command as a list of arguments.
        """
        command = ["docker", "run", "--rm"]
        if gpu:
            command += ["--gpus", "all"]
        command += [
            "-p",
            f"{self.grpc_port}:{self.grpc_port}",
            "-p",
            f"{self.rest_port}:{self.rest_port}",
        ]
        for path in (*self.models.values(), self.directory):
            command += ["-v", f"{path}:{path}:ro"]
        command.append(GPU_IMAGE if gpu else CPU_IMAGE)
        return command + self.server_args()


def check_model_base_path(name: str, path: str | os.PathLike) -> None:
    """Raises a `ValueError` unless `path` is a model base path TF Serving
    can load: a directory holding at least one complete integer version.

    Args:
        name: the model name, for the message.
        path: the base path (`saved_models/mmoe`, not `saved_models/mmoe/3`).

    Raises:
        ValueError: the path is missing, is a version directory itself, or
            holds no complete version; the message says which.
    """
    from kmtl.export.versions import list_versions

    base = pathlib.Path(path)
    if not base.is_dir():
        raise ValueError(
            f"Model {name!r}: base path {str(base)!r} is not a directory. "
            "Pass the directory `kmtl.export` wrote its versions into."
        )
    if (base / "saved_model.pb").is_file():
        raise ValueError(
            f"Model {name!r}: {str(base)!r} is a version directory (it holds "
            "saved_model.pb); TF Serving takes the base path above it: "
            f"{str(base.parent)!r}."
        )
    if not list_versions(base, complete=True):
        raise ValueError(
            f"Model {name!r}: base path {str(base)!r} holds no complete "
            "version (an integer directory with a saved_model.pb); export "
            "one with `kmtl.export(model, path)` first."
        )


def write_serving_config(
    directory: str | os.PathLike,
    models: Mapping[str, str | os.PathLike],
    *,
    version_policy: str = "latest",
    batching: Batching | None = None,
    grpc_port: int = GRPC_PORT,
    rest_port: int = REST_PORT,
) -> ServingConfig:
    """Writes `models.config` and `batching_parameters.txt` into a directory.

    Args:
        directory: str or path. Created if missing.
        models: dict model name -> base path (the directory of integer
            versions that `kmtl.export` writes).
        version_policy: str. `latest`, `latest:N`, `all` or
            `specific:V1,V2`. Defaults to `"latest"`.
        batching: Batching or None. Defaults to `Batching()`.
        grpc_port: int. Defaults to 8500.
        rest_port: int. Defaults to 8501.

    Returns:
        A `ServingConfig`, whose `server_command()` and
        `docker_command(gpu=...)` start TF Serving on these files.

    Example:

    ```python
    config = write_serving_config("serving", {"mmoe": "saved_models/mmoe"})
    print(shlex.join(config.docker_command(gpu=True)))
    ```
    """
    if grpc_port == rest_port:
        raise ValueError(
            f"The gRPC and REST ports must differ. Received: {grpc_port}"
        )
    text = model_config(models, version_policy)
    for name, path in models.items():
        check_model_base_path(name, path)
    batching = Batching() if batching is None else batching
    out = pathlib.Path(directory).resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / MODELS_CONFIG).write_text(text)
    (out / BATCHING_PARAMETERS).write_text(batching.to_text())
    return ServingConfig(
        directory=out,
        models={
            name: pathlib.Path(path).resolve() for name, path in models.items()
        },
        grpc_port=grpc_port,
        rest_port=rest_port,
    )


def describe(config: ServingConfig) -> str:
    """The text `kmtl serve-config` prints: files and commands.

    Args:
        config: ServingConfig.

    Returns:
        Lines naming the files, then the local, CPU docker and GPU docker
        commands, each one shell-quoted.
    """
    lines = [
        f"Wrote {config.models_config}",
        f"Wrote {config.batching_parameters}",
        "",
        "Serve with the TF Serving binary:",
        "  " + shlex.join(config.server_command()),
        "",
        "Serve with docker (CPU):",
        "  " + shlex.join(config.docker_command(gpu=False)),
        "",
        "Serve with docker (GPU, needs the NVIDIA container toolkit):",
        "  " + shlex.join(config.docker_command(gpu=True)),
        "",
        f"REST: http://localhost:{config.rest_port}/v1/models/<name>:predict"
        f"   gRPC: localhost:{config.grpc_port}",
    ]
    return "\n".join(lines)

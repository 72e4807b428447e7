"""Fixtures shared by the whole test tree."""

import json
import os

import pytest

from kmtl.cli import main


def _flag_value(value):
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return os.fspath(value) if isinstance(value, os.PathLike) else str(value)


@pytest.fixture
def kmtl_cli(capsys):
    """Runs the `kmtl` command line in this process.

    `kmtl_cli("benchmark", "speed", eval_rows=16, hparams={...})` runs
    `kmtl benchmark speed --eval-rows 16 --hparams '{...}'` (a dict or list
    goes as JSON) and returns `(exit code, stdout, stderr)`.
    """

    def run(*words, **options):
        argv = list(words)
        for name, value in options.items():
            argv += [f"--{name.replace('_', '-')}", _flag_value(value)]
        code = main(argv)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run

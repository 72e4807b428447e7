"""A child process of the concurrency test: builds the tiny model and
exports it to a shared base path, starting together with its siblings."""

import os


def export_versions(base: str, count: int, barrier, results) -> None:
    """Exports `count` versions to `base` once every sibling is ready, and
    puts `(pid, [version paths])` or `(pid, error text)` on `results`."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import keras

        import kmtl
        from kmtl.export import export
        from tests.export.tiny_model import tiny_spec

        keras.utils.set_random_seed(0)
        spec = tiny_spec()
        model = kmtl.build(
            "mmoe", spec, num_experts=2, expert_units=(8,), tower_units=(4,)
        )
        barrier.wait(timeout=300)
        paths = [str(export(model, base)) for _ in range(count)]
        results.put((os.getpid(), paths))
    except BaseException as err:  # reported to the parent, which fails
        import traceback

        results.put((os.getpid(), "".join(traceback.format_exception(err))))

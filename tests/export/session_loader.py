"""Runs a SavedModel as TF Serving runs it: the TF1 session loader, feeds
and fetches named by the SignatureDef (not `tf.saved_model.load`)."""

import os

import numpy as np
import tensorflow as tf


class SessionModel:
    """A SavedModel loaded into a `tf.compat.v1.Session` with the `serve`
    tag, as TF Serving's `SavedModelBundle` loads it."""

    def __init__(self, export_dir: str | os.PathLike) -> None:
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        with self.graph.as_default():
            meta_graph = tf.compat.v1.saved_model.loader.load(
                self.session, ["serve"], str(export_dir)
            )
        self.signature_defs = {
            name: signature
            for name, signature in meta_graph.signature_def.items()
            if not name.startswith("__")
        }

    def run(
        self, signature_name: str, inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Feeds `inputs` by the SignatureDef's tensor names and fetches
        every output; raises TF's errors (e.g. `InvalidArgumentError`)."""
        signature = self.signature_defs[signature_name]
        feeds = {
            signature.inputs[name].name: value for name, value in inputs.items()
        }
        fetches = {name: info.name for name, info in signature.outputs.items()}
        return self.session.run(fetches, feeds)

    def run_as_served(
        self, signature_name: str, inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Like `run`, but feeds the arrays as they are, as TF Serving
        does: `Session.run` checks a feed's shape against the placeholder
        and casts its dtype in Python first, which TF Serving's C++ session
        does not (there, only the graph's own checks see a wrong shape)."""
        signature = self.signature_defs[signature_name]
        feeds = {
            self.graph.get_tensor_by_name(signature.inputs[name].name).ref(): (
                np.asarray(value)
            )
            for name, value in inputs.items()
        }
        names = list(signature.outputs)
        fetches = [
            self.graph.get_tensor_by_name(signature.outputs[name].name)
            for name in names
        ]
        values = self.session._do_run(None, [], fetches, feeds, None, None)
        return dict(zip(names, values, strict=True))

    def close(self) -> None:
        self.session.close()

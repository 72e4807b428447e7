"""Export to TF Serving: SavedModel signatures, warmup, atomic versions.

`kmtl.export` at the top level of `kmtl` is the `export` function; import
the helpers from this package: `from kmtl.export import load_spec`.
"""

from kmtl.export.checks import check_inputs
from kmtl.export.examples import EXAMPLES_KEY
from kmtl.export.examples import feature_description
from kmtl.export.examples import parse_examples
from kmtl.export.examples import serialize_examples
from kmtl.export.sample import synthetic_rows
from kmtl.export.saved_model import SPEC_FILE
from kmtl.export.saved_model import ExportVerificationError
from kmtl.export.saved_model import device_pins
from kmtl.export.saved_model import export
from kmtl.export.saved_model import find_spec
from kmtl.export.saved_model import load_spec
from kmtl.export.saved_model import serving_input_signature
from kmtl.export.saved_model import signature_inputs
from kmtl.export.saved_model import synthetic_inputs
from kmtl.export.signatures import SCENARIO_PREFIX
from kmtl.export.signatures import SIGNATURE_KEY
from kmtl.export.signatures import Endpoint
from kmtl.export.signatures import endpoints
from kmtl.export.signatures import scenario_signature_key
from kmtl.export.versions import latest_version
from kmtl.export.versions import list_versions
from kmtl.export.warmup import ASSETS_EXTRA
from kmtl.export.warmup import WARMUP_FILE
from kmtl.export.warmup import predict_request
from kmtl.export.warmup import read_warmup
from kmtl.export.warmup import warmup_requests

__all__ = [
    "ASSETS_EXTRA",
    "EXAMPLES_KEY",
    "SCENARIO_PREFIX",
    "SIGNATURE_KEY",
    "SPEC_FILE",
    "WARMUP_FILE",
    "Endpoint",
    "ExportVerificationError",
    "check_inputs",
    "device_pins",
    "endpoints",
    "export",
    "feature_description",
    "find_spec",
    "latest_version",
    "load_spec",
    "parse_examples",
    "predict_request",
    "read_warmup",
    "scenario_signature_key",
    "serialize_examples",
    "serving_input_signature",
    "signature_inputs",
    "synthetic_inputs",
    "synthetic_rows",
    "list_versions",
    "warmup_requests",
]

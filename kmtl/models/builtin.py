"""Imports every built-in model file so that each registers itself."""

from kmtl.models import aesm2  # noqa: F401
from kmtl.models import aitm  # noqa: F401
from kmtl.models import dcn  # noqa: F401
from kmtl.models import esmm  # noqa: F401
from kmtl.models import hinet  # noqa: F401
from kmtl.models import lhuc  # noqa: F401
from kmtl.models import mmoe  # noqa: F401
from kmtl.models import pepnet  # noqa: F401
from kmtl.models import ple  # noqa: F401
from kmtl.models import shared_bottom  # noqa: F401
from kmtl.models import star  # noqa: F401

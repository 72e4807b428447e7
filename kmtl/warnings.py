"""kmtl's warning category, turned into errors by the test suite."""


class KMTLWarning(UserWarning):
    """A warning raised by kmtl itself."""

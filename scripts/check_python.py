"""Exit with a clear sentence when the interpreter is not one the suite supports."""

import sys

SUPPORTED = ((3, 11), (3, 12))

if sys.version_info[:2] not in SUPPORTED:
    found = ".".join(map(str, sys.version_info[:3]))
    names = " or ".join(f"{major}.{minor}" for major, minor in SUPPORTED)
    sys.exit(
        f"DeelRx needs Python {names}; `{sys.executable}` is {found}.\n"
        f"Install a supported Python and run make with PYTHON pointing at it, e.g. `make test PYTHON=python3.12`."
    )

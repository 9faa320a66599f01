"""Package attributes imported on first use (PEP 562).

A package's ``__init__`` names its public surface without importing it, so reading one
constant (the table contract's allowed values, the fitting vocabulary) from a study file
does not pay for pandas, scipy and every law.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(package: str, exports: dict[str, str],
                 namespace: dict[str, object]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for `package`, whose public name N lives in module
    exports[N]; a name is imported once and then kept in the package's `namespace`."""

    def __getattr__(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__

"""The results table: its contract (columns, allowed values and their meanings) and the
loading and validation of tables against it."""

from scaling._lazy import lazy_exports

_EXPORTS = {name: "scaling.table.load" for name in
            ("TableError", "load_results", "load_tuning", "validate_results")}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports("scaling.table", _EXPORTS, globals())

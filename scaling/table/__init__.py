"""The results table: its contract (columns, allowed values and their meanings) and the
loading and validation of tables against it."""

from scaling.table.load import TableError, load_results, load_tuning, validate_results

__all__ = ["TableError", "load_results", "load_tuning", "validate_results"]

"""Loading and validating results tables against their contract (scaling.table.contract).

A results table is long-form, one row per (recipe, run): a run shared by two recipes appears
once per recipe. `dcsl sweep collect` writes it as results.parquet; any parquet or CSV file
with the contract's columns works.

A table without these columns is still a valid input to a single fit: law_points picks any
two numeric columns (`dcsl fit TABLE --x COLUMN --y COLUMN`).

Every problem is reported as a TableError with a one-line message naming the file and the
missing column or bad value.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from scaling.table.contract import (
    ANALYSIS_FILE,
    ANALYSIS_KEYS,
    CURVE_COLUMNS,
    CURVES_FILE,
    DISTILL_COLUMNS,
    DISTILL_REQUIRED_COLUMNS,
    EVAL_COLUMNS,
    EVAL_OPTIONAL_COLUMNS,
    KINDS,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    RESULTS_NAMES,
    ROLES,
    RULES,
    STATUSES,
    TUNING_COLUMNS,
    X_COLUMNS,
    default_role,
)


class TableError(ValueError):
    """A results or tuning table that does not meet the contract (one-line message)."""


def missing_study_columns(table: pd.DataFrame) -> list[str]:
    """Required columns of the study analysis that the table lacks."""
    return [c for c in REQUIRED_COLUMNS if c not in table.columns]


def resolve_results_path(path: str | Path) -> Path:
    """The results file itself, or results.parquet / results.csv inside a folder."""
    path = Path(path)
    if path.is_dir():
        for name in RESULTS_NAMES:
            if (path / name).is_file():
                return path / name
        raise TableError(f"{path}: no results.parquet or results.csv in this folder")
    if not path.exists():
        raise TableError(f"{path}: no such file or folder")
    return path


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a parquet or CSV file into a DataFrame, with a one-line error on failure."""
    path = Path(path)
    if not path.is_file():
        raise TableError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".tsv"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    except Exception as exc:  # any reader failure (corrupt file, bad encoding) becomes one line
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TableError(f"{path}: cannot read ({first_line})") from exc
    raise TableError(f"{path}: unknown table format {suffix!r} (expected .parquet or .csv)")


def load_results(path: str | Path, *, x_column: str = "n_params") -> pd.DataFrame:
    """Load and validate a results table (file, or folder holding results.parquet/.csv)."""
    resolved = resolve_results_path(path)
    return validate_results(read_table(resolved), source=str(resolved), x_column=x_column)


def load_analysis_settings(path: str | Path) -> dict[str, object]:
    """analysis.json beside a results table (ANALYSIS_KEYS), or {} when there is none; a file
    that cannot be read, or an unknown key, is a TableError naming it."""
    import json

    path = Path(path)
    if not path.is_dir():
        path = path.parent
    path = path / ANALYSIS_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise TableError(f"{path}: cannot be read ({exc})") from exc
    if not isinstance(data, dict):
        raise TableError(f"{path}: expected a JSON object")
    unknown = sorted(set(data) - set(ANALYSIS_KEYS))
    if unknown:
        raise TableError(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(ANALYSIS_KEYS)})")
    return data


def load_curves(path: str | Path) -> pd.DataFrame | None:
    """curves.parquet (the runs' training curves) given its folder or path; None without one."""
    path = Path(path)
    if path.is_dir():
        path = path / CURVES_FILE
    if not path.is_file():
        return None
    frame = read_table(path)
    _require(frame, CURVE_COLUMNS, str(path))
    for column in CURVE_COLUMNS[1:]:
        frame[column] = to_numeric(frame[column], column, str(path))
    return frame


def load_tuning(path: str | Path) -> pd.DataFrame | None:
    """Load tuning.csv given its path or the folder holding it; None when there is none."""
    path = Path(path)
    if path.is_dir():
        path = path / "tuning.csv"
    if not path.is_file():
        return None
    return validate_tuning(read_table(path), source=str(path))


def validate_results(
    table: pd.DataFrame, *, source: str = "results table", x_column: str = "n_params"
) -> pd.DataFrame:
    """Check the contract and return a cleaned copy with normalised dtypes.

    Raises TableError naming the first problem: a missing column, an unknown kind/status/rule,
    a non-numeric or non-positive number where one is required.
    """
    if x_column not in X_COLUMNS:
        raise TableError(f"{source}: --x-column must be one of {', '.join(X_COLUMNS)}, "
                         f"got {x_column!r}")
    _require(table, REQUIRED_COLUMNS, source)
    _require(table, (x_column,), source, why="chosen as the x column")
    out = table.copy()
    for column in ("run_id", "kind", "recipe", "status", "size"):
        out[column] = out[column].astype("string").fillna("").str.strip()
    _check_values(out, "kind", KINDS, source)
    _check_values(out, "status", STATUSES, source)
    if "rule" in out.columns:
        out["rule"] = out["rule"].astype("string").fillna("").str.strip()
    else:
        out["rule"] = ""
    out["role"] = (out["role"].astype("string").fillna("").str.strip() if "role" in out.columns
                   else derive_roles(out))
    _check_values(out, "role", ROLES, source)
    is_ensemble = out["kind"] == "ensemble"
    out.loc[is_ensemble & (out["rule"] == ""), "rule"] = "logit-mean"
    _check_values(out[is_ensemble], "rule", RULES, source)
    numeric = ["n_params", "budget_tokens", "val_loss", "K", x_column]
    numeric += [c for c in OPTIONAL_COLUMNS + DISTILL_COLUMNS + EVAL_COLUMNS[1:]
                + EVAL_OPTIONAL_COLUMNS if c in out.columns and c != "rule"]
    for column in dict.fromkeys(numeric):
        out[column] = to_numeric(out[column], column, source)
    # K only means something for ensembles; a blank K elsewhere is a single model
    out.loc[out["K"].isna() & (out["kind"] != "ensemble"), "K"] = 1.0
    kinds = set(out.loc[out["status"] == "succeeded", "kind"])
    if "distill" in kinds:
        _require(out, DISTILL_REQUIRED_COLUMNS, source, why="needed by distill rows")
    if "eval" in kinds:
        _require(out, EVAL_COLUMNS, source, why="needed by eval rows")
    # Fits take logs of these, so on the rows that are fitted they must be positive numbers.
    fitted = (out["status"] == "succeeded") & out["kind"].isin(["train", "ensemble"])
    for column in ("n_params", x_column, "budget_tokens", "K"):
        bad = fitted & ~(out[column] > 0)
        if bad.any():
            row = out[bad].iloc[0]
            raise TableError(f"{source}: column {column!r} must be positive on succeeded rows "
                             f"(run {row['run_id']!r} has {row[column]})")
    return out.reset_index(drop=True)


def derive_roles(table: pd.DataFrame) -> pd.Series:
    """Roles for a table without a role column (contract.default_role of each row)."""
    roles = [default_role(recipe, kind) for recipe, kind in
             zip(table["recipe"].astype(str), table["kind"].astype(str), strict=True)]
    return pd.Series(roles, index=table.index, dtype="string")


class LawPoints(NamedTuple):
    """The points of a single-law fit read from any table (see law_points)."""

    points: pd.DataFrame
    """Columns x, y (positive floats) and, when grouped, group; one row per usable row."""
    x: str
    y: str
    group: str | None
    n_rows: int
    n_skipped: int
    """Rows left out for a blank or NaN x, y or group."""


def resolve_column(table: pd.DataFrame, name: str, source: str) -> str:
    """The column a user named: that exact column, else the one column whose name ends in
    `_<name>` (so `params` finds n_params and `tokens` finds budget_tokens)."""
    columns = [str(c) for c in table.columns]
    if name in columns:
        return name
    suffixed = [c for c in columns if c.endswith(f"_{name}")]
    if len(suffixed) == 1:
        return suffixed[0]
    hint = f"; did you mean {' or '.join(suffixed)}?" if suffixed else ""
    raise TableError(f"{source}: no column {name!r}{hint} (columns: {', '.join(columns)})")


def law_points(table: pd.DataFrame, x: str, y: str, *, group: str | None = None,
               source: str = "table") -> LawPoints:
    """The (x, y) points of a single law L(x) = A / x^alpha + E from any table.

    Rows with a blank or NaN x, y (or group) are skipped and counted; a value that is not a
    number, infinite or not positive is a TableError (the fit takes logs, and quietly dropping
    such a row would hide a broken table).
    """
    table = table.rename(columns=str)
    x, y = resolve_column(table, x, source), resolve_column(table, y, source)
    if x == y:
        raise TableError(f"{source}: x and y are the same column {x!r}")
    points = pd.DataFrame({"x": to_numeric(table[x], x, source),
                           "y": to_numeric(table[y], y, source)})
    if group is not None:
        group = resolve_column(table, group, source)
        values = table[group]
        if not pd.api.types.is_numeric_dtype(values):
            values = values.astype("string").str.strip().replace("", pd.NA)
        points["group"] = values.astype(object).where(values.notna(), None)
    usable = points.notna().all(axis=1)
    points = points[usable]
    for axis, column in (("x", x), ("y", y)):
        bad = ~np.isfinite(points[axis]) | (points[axis] <= 0)
        if bad.any():
            row = int(points.index[bad][0])
            raise TableError(f"{source}: column {column!r} must be finite and positive to fit a "
                             f"power law (data row {row + 1} has {points.loc[row, axis]})")
    return LawPoints(points.reset_index(drop=True), x, y, group, len(table),
                     int((~usable).sum()))


def validate_tuning(table: pd.DataFrame, *, source: str = "tuning.csv") -> pd.DataFrame:
    """Check the tuning table's columns and normalise `certified` to bool."""
    _require(table, TUNING_COLUMNS, source)
    out = table.copy()
    for column in ("recipe", "size"):
        out[column] = out[column].astype("string").fillna("")
    for column in ("budget_tokens", "epochs", "lr", "weight_decay", "val_loss"):
        out[column] = to_numeric(out[column], column, source)
    truthy = {"true", "1", "yes", "y", "t"}
    out["certified"] = out["certified"].map(lambda v: str(v).strip().lower() in truthy)
    return out.reset_index(drop=True)


def _require(table: pd.DataFrame, columns: tuple[str, ...], source: str, why: str = "") -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        reason = f" ({why})" if why else ""
        names = ", ".join(repr(c) for c in missing)
        plural = "s" if len(missing) > 1 else ""
        raise TableError(f"{source}: missing column{plural} {names}{reason}")


def _check_values(table: pd.DataFrame, column: str, allowed: tuple[str, ...], source: str) -> None:
    unknown = sorted(set(table[column]) - set(allowed))
    if unknown:
        raise TableError(f"{source}: column {column!r} has unknown value(s) "
                         f"{', '.join(repr(str(u)) for u in unknown)} "
                         f"(allowed: {', '.join(allowed)})")


def to_numeric(values: pd.Series, column: str, source: str) -> pd.Series:
    converted = pd.to_numeric(values, errors="coerce")
    bad = converted.isna() & values.notna() & (values.astype("string").str.strip() != "")
    if bad.any():
        raise TableError(f"{source}: column {column!r} is not numeric "
                         f"(value {values[bad].iloc[0]!r})")
    return converted.astype(float)

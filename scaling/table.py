"""The results-table contract, and loading and validating such tables.

A results table is long-form, one row per (recipe, run): a run shared by two recipes appears
once per recipe. `dcsl sweep collect` writes it as results.parquet; any parquet or CSV file
with these columns works.

Columns every table needs (the analysis reads them):

=========================  ===================================================================
run_id (str)               the run's id
kind (str)                 "train", "ensemble", "distill" or "eval"
recipe (str)               the study's name for the recipe or stage the row belongs to
                           ("standard", "regularized", "ensemble", "distill-ensemble", ...);
                           shown in tables and figures, never interpreted
status (str)               "succeeded", "failed", "running", "pending" or "missing"; only
                           succeeded rows are analysed, the others are counted and reported
size (str)                 size name, e.g. "150m" or "tiny-3"
n_params (int)             total parameters including embeddings: the default x of size laws
budget_tokens (int)        the unique-data budget D
val_loss (float)           final validation loss, nats/token: what every law is fitted on
K (int)                    ensemble members; 1 for train rows (blank is read as 1 except
                           on ensemble rows)
=========================  ===================================================================

Documented columns the analysis uses when present:

- ``role`` (str): what the row is to the analysis, whatever the recipe is called: "standard"
  (the baseline recipe: its best run per budget and its data law), "regularized" (tuned per
  size: a size law and its asymptote), "member" (a training run that is an ensemble member),
  "ensemble" (an ensemble's loss, or an ensemble's eval), "distill" (a student) or "other".
  Without the column, roles are derived from the usual recipe names: standard, regularized,
  ensemble / ensemble-member (member on train rows), and the kind for distill rows.

- ``n_params_non_embedding`` (int): the alternative x for size laws (``--x-column``).
- ``epochs``, ``lr``, ``weight_decay`` (float), ``seed`` (int), ``best_val_loss`` (float).
- ``rule``: "logit-mean" or "prob-mean" on ensemble rows, empty otherwise. Without the column
  every ensemble row is taken as logit-mean, the analysis default (and the authors' rule).
- distill rows: ``teacher_loss``, ``single_loss`` (one single model at the teacher's size and
  recipe, the baseline) and ``synthetic_weight``; ``val_loss`` is the student's loss. The
  retained share is (single_loss - val_loss) / (single_loss - teacher_loss).
- eval rows: ``task`` ("arc_easy", "piqa", "sciq", ...), ``acc``, ``acc_norm``, ``acc_stderr``,
  ``acc_norm_stderr``; ``K`` and ``rule`` when the evaluated model is an ensemble.

The optional companion ``tuning.csv`` (from the sweep's tuner) has recipe, size,
budget_tokens, epochs, lr, weight_decay, val_loss, certified (bool), runs_used, lattice_size.

Every problem is reported as a TableError with a one-line message naming the file and the
missing column or bad value.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

REQUIRED_COLUMNS = ("run_id", "kind", "recipe", "status", "size", "n_params", "budget_tokens",
                    "val_loss", "K")
OPTIONAL_COLUMNS = ("n_params_non_embedding", "epochs", "lr", "weight_decay", "seed",
                    "best_val_loss", "rule")
DISTILL_COLUMNS = ("teacher_loss", "single_loss", "synthetic_weight")
EVAL_COLUMNS = ("task", "acc", "acc_stderr")
EVAL_OPTIONAL_COLUMNS = ("acc_norm", "acc_norm_stderr")
TUNING_COLUMNS = ("recipe", "size", "budget_tokens", "epochs", "lr", "weight_decay", "val_loss",
                  "certified")
TUNING_OPTIONAL_COLUMNS = ("runs_used", "lattice_size")

KINDS = ("train", "ensemble", "distill", "eval")
STATUSES = ("succeeded", "failed", "running", "pending", "missing")
RULES = ("logit-mean", "prob-mean")
ROLES = ("standard", "regularized", "member", "ensemble", "distill", "other")
X_COLUMNS = ("n_params", "n_params_non_embedding")
RESULTS_NAMES = ("results.parquet", "results.csv")


class TableError(ValueError):
    """A results or tuning table that does not meet the contract (one-line message)."""


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
        out[column] = _to_numeric(out[column], column, source)
    # K only means something for ensembles; a blank K elsewhere is a single model
    out.loc[out["K"].isna() & (out["kind"] != "ensemble"), "K"] = 1.0
    kinds = set(out.loc[out["status"] == "succeeded", "kind"])
    if "distill" in kinds:
        _require(out, DISTILL_COLUMNS[:2], source, why="needed by distill rows")
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
    """Roles for a table without a role column, from the usual recipe names and the kind."""
    recipe, kind = table["recipe"].astype(str), table["kind"].astype(str)
    role = pd.Series("other", index=table.index, dtype="string")
    role[recipe == "standard"] = "standard"
    role[recipe == "regularized"] = "regularized"
    role[recipe.isin(["ensemble", "ensemble-member"])] = "ensemble"
    role[(kind == "train") & recipe.isin(["ensemble", "ensemble-member"])] = "member"
    role[kind == "ensemble"] = "ensemble"
    role[kind == "distill"] = "distill"
    return role


def validate_tuning(table: pd.DataFrame, *, source: str = "tuning.csv") -> pd.DataFrame:
    """Check the tuning table's columns and normalise `certified` to bool."""
    _require(table, TUNING_COLUMNS, source)
    out = table.copy()
    for column in ("recipe", "size"):
        out[column] = out[column].astype("string").fillna("")
    for column in ("budget_tokens", "epochs", "lr", "weight_decay", "val_loss"):
        out[column] = _to_numeric(out[column], column, source)
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


def _to_numeric(values: pd.Series, column: str, source: str) -> pd.Series:
    converted = pd.to_numeric(values, errors="coerce")
    bad = converted.isna() & values.notna() & (values.astype("string").str.strip() != "")
    if bad.any():
        raise TableError(f"{source}: column {column!r} is not numeric "
                         f"(value {values[bad].iloc[0]!r})")
    return converted.astype(float)

"""Scaling laws for data-constrained pretraining studies: fits, limits, multipliers, reports.

Works on tables and arrays only (numpy, scipy, pandas; matplotlib for figures, imported
lazily): it never imports torch or any other dcsl package, so an analysis reruns in seconds
on a laptop.

    from scaling import fit_power_law, analyze_study, write_report
    law = fit_power_law(n_params, loss, n_boot=1000)        # L = A / x^alpha + E
    study = analyze_study("runs/results.parquet")          # every law, limit and multiplier
    write_report(study, "runs/report")                      # figures + report.md/.html

    from scaling import fit_chinchilla_law, fit_data_constrained_law, optimal_allocation
    joint = fit_chinchilla_law(n_params, tokens, loss, n_boot=1000)   # L = E + A/N^a + B/D^b
    dc = fit_data_constrained_law(n_params, tokens, unique_tokens, loss)  # R_D*, R_N*
    optimal_allocation(dc, compute=1e21, unique_tokens=1e9)           # N, D, epochs
"""

from scaling.analysis.datalaws import effective_data, effective_data_multiplier
from scaling.analysis.study import StudyAnalysis, analyze_study
from scaling.analysis.types import BestRun, Curve, Multiplier
from scaling.fit import (
    Allocation,
    Estimate,
    FitInputError,
    JointLawFit,
    LackOfFit,
    PowerLawFit,
    effective_params,
    effective_tokens,
    fit_chinchilla_law,
    fit_data_constrained_law,
    fit_power_law,
    optimal_allocation,
)
from scaling.report.page import write_report
from scaling.table.load import TableError, load_results, load_tuning, validate_results

__all__ = [
    "Allocation",
    "BestRun",
    "Curve",
    "Estimate",
    "FitInputError",
    "JointLawFit",
    "LackOfFit",
    "Multiplier",
    "PowerLawFit",
    "StudyAnalysis",
    "TableError",
    "analyze_study",
    "effective_data",
    "effective_data_multiplier",
    "effective_params",
    "effective_tokens",
    "fit_chinchilla_law",
    "fit_data_constrained_law",
    "fit_power_law",
    "load_results",
    "load_tuning",
    "optimal_allocation",
    "validate_results",
    "write_report",
]

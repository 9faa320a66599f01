"""Scaling laws for data-constrained pretraining studies: fits, limits, multipliers, reports.

Works on tables and arrays only (numpy, scipy, pandas; matplotlib for figures, imported
lazily): it never imports torch or any other dcsl package, so an analysis reruns in seconds
on a laptop.

    from scaling import fit_power_law, analyze_study, write_report
    law = fit_power_law(n_params, loss, n_boot=1000)        # L = A / x^alpha + E
    study = analyze_study("runs/results.parquet")          # every law, limit and multiplier
    write_report(study, "runs/report")                      # figures + report.md/.html
"""

from scaling.analysis.datalaws import effective_data, effective_data_multiplier
from scaling.analysis.study import StudyAnalysis, analyze_study
from scaling.analysis.types import BestRun, Curve, Multiplier
from scaling.fit.bootstrap import Estimate
from scaling.fit.power_law import FitInputError, PowerLawFit, fit_power_law
from scaling.report.page import write_report
from scaling.table.load import TableError, load_results, load_tuning, validate_results

__all__ = [
    "BestRun",
    "Curve",
    "Estimate",
    "FitInputError",
    "Multiplier",
    "PowerLawFit",
    "StudyAnalysis",
    "TableError",
    "analyze_study",
    "effective_data",
    "effective_data_multiplier",
    "fit_power_law",
    "load_results",
    "load_tuning",
    "validate_results",
    "write_report",
]

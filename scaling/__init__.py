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

from scaling._lazy import lazy_exports

# Public name -> the module that defines it. Imported on first use (PEP 562), so that reading a
# constant of the table contract or of the fitting vocabulary (as study files do) does not pay
# for pandas, scipy and every law.
_EXPORTS = {
    "Allocation": "scaling.fit.allocation", "BestRun": "scaling.analysis.types",
    "Curve": "scaling.analysis.types", "Estimate": "scaling.fit.bootstrap",
    "FitInputError": "scaling.fit.power_law", "JointLawFit": "scaling.fit.joint",
    "LackOfFit": "scaling.fit.lack_of_fit", "Multiplier": "scaling.analysis.types",
    "PowerLawFit": "scaling.fit.power_law", "StudyAnalysis": "scaling.analysis.study",
    "TableError": "scaling.table.load", "analyze_study": "scaling.analysis.study",
    "effective_data": "scaling.analysis.datalaws",
    "effective_data_multiplier": "scaling.analysis.datalaws",
    "effective_params": "scaling.fit.forms", "effective_tokens": "scaling.fit.forms",
    "fit_chinchilla_law": "scaling.fit.joint", "fit_data_constrained_law": "scaling.fit.joint",
    "fit_power_law": "scaling.fit.power_law", "load_results": "scaling.table.load",
    "load_tuning": "scaling.table.load", "optimal_allocation": "scaling.fit.allocation",
    "validate_results": "scaling.table.load", "write_report": "scaling.report.page",
}
__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports("scaling", _EXPORTS, globals())

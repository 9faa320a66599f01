"""The fitting engine: laws as data, one vectorised solver, the bootstrap and the diagnostics.

Arrays in, frozen results out; nothing here reads a table or draws a figure. The study
analysis (``scaling.analysis``), the design review (``scaling.design``) and the command line
all fit through this package, so a law is fitted the same way wherever it appears.
"""

from scaling._lazy import lazy_exports

# Public name -> its module, imported on first use (PEP 562): the fitting vocabulary
# (METHODS, BOOTSTRAPS) is read by study files without loading scipy and every law.
_EXPORTS = {
    "Allocation": "scaling.fit.allocation", "optimal_allocation": "scaling.fit.allocation",
    "BOOTSTRAPS": "scaling.fit.bootstrap", "DEFAULT_LEVEL": "scaling.fit.bootstrap",
    "DEFAULT_N_BOOT": "scaling.fit.bootstrap", "Estimate": "scaling.fit.bootstrap",
    "chinchilla_loss": "scaling.fit.forms", "data_constrained_loss": "scaling.fit.forms",
    "effective_params": "scaling.fit.forms", "effective_tokens": "scaling.fit.forms",
    "unique_params": "scaling.fit.forms",
    "JointLawFit": "scaling.fit.joint", "fit_chinchilla_law": "scaling.fit.joint",
    "fit_data_constrained_law": "scaling.fit.joint",
    "LackOfFit": "scaling.fit.lack_of_fit", "lack_of_fit": "scaling.fit.lack_of_fit",
    "FitInputError": "scaling.fit.power_law", "PowerLawFit": "scaling.fit.power_law",
    "fit_power_law": "scaling.fit.power_law", "METHODS": "scaling.fit.solver",
}
__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports("scaling.fit", _EXPORTS, globals())

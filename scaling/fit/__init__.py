"""The fitting engine: laws as data, one vectorised solver, the bootstrap and the diagnostics.

Arrays in, frozen results out; nothing here reads a table or draws a figure. The study
analysis (``scaling.analysis``), the design review (``scaling.design``) and the command line
all fit through this package, so a law is fitted the same way wherever it appears.
"""

from scaling.fit.bootstrap import BOOTSTRAPS, DEFAULT_LEVEL, DEFAULT_N_BOOT, Estimate
from scaling.fit.power_law import METHODS, FitInputError, PowerLawFit, fit_power_law

__all__ = ["BOOTSTRAPS", "DEFAULT_LEVEL", "DEFAULT_N_BOOT", "METHODS", "Estimate", "FitInputError",
           "PowerLawFit", "fit_power_law"]

"""The fitting engine: laws as data, one vectorised solver, the bootstrap and the diagnostics.

Arrays in, frozen results out; nothing here reads a table or draws a figure. The study
analysis (``scaling.analysis``), the design review (``scaling.design``) and the command line
all fit through this package, so a law is fitted the same way wherever it appears.
"""

from scaling.fit.allocation import Allocation, optimal_allocation
from scaling.fit.bootstrap import BOOTSTRAPS, DEFAULT_LEVEL, DEFAULT_N_BOOT, Estimate
from scaling.fit.forms import (
    chinchilla_loss,
    data_constrained_loss,
    effective_params,
    effective_tokens,
    unique_params,
)
from scaling.fit.joint import JointLawFit, fit_chinchilla_law, fit_data_constrained_law
from scaling.fit.lack_of_fit import LackOfFit, lack_of_fit
from scaling.fit.power_law import METHODS, FitInputError, PowerLawFit, fit_power_law

__all__ = ["BOOTSTRAPS", "DEFAULT_LEVEL", "DEFAULT_N_BOOT", "METHODS", "Allocation", "Estimate",
           "FitInputError", "JointLawFit", "LackOfFit", "PowerLawFit", "chinchilla_loss",
           "data_constrained_loss", "effective_params", "effective_tokens", "fit_chinchilla_law",
           "fit_data_constrained_law", "fit_power_law", "lack_of_fit", "optimal_allocation",
           "unique_params"]

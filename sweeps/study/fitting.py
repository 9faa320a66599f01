"""How a study's laws are fitted: the ``analysis`` section of a study file.

One set of settings for every reader of a study: ``dcsl demo`` and ``dcsl report STUDY`` fit
with them, and ``dcsl sweep plan``'s design review simulates its laws with them, so the review
predicts the fits the study will get (the same x, the same bootstrap).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from scaling.fit.bootstrap import BOOTSTRAPS, DEFAULT_LEVEL, DEFAULT_N_BOOT
from scaling.fit.solver import METHODS
from scaling.table.contract import RULES, X_COLUMNS

if TYPE_CHECKING:
    from scaling.analysis.types import Settings


@dataclass(frozen=True)
class Analysis:
    """Fitting settings; each default is the analysis's own (``scaling.analyze_study``)."""

    n_boot: int = field(default=DEFAULT_N_BOOT, metadata={"min": 0})
    """Bootstrap resamples per law (0: no intervals)."""
    bootstrap: str = field(default="pairs", metadata={"choices": BOOTSTRAPS})
    """pairs (resample points) or residual (keep the design, resample residuals)."""
    x_column: str = field(default="n_params", metadata={"choices": X_COLUMNS})
    """The parameter count of size laws: total (n_params) or non-embedding."""
    method: str = field(default="huber-log", metadata={"choices": METHODS})
    level: float = field(default=DEFAULT_LEVEL, metadata={"positive": True})
    rule: str = field(default="logit-mean", metadata={"choices": RULES})
    """The ensemble rule the laws are fitted to."""

    def __post_init__(self) -> None:
        if not 0 < self.level < 1:
            raise ValueError(f"level must be between 0 and 1, got {self.level}")

    def settings(self, seed: int = 0) -> Settings:
        from scaling.analysis.types import Settings

        return Settings(self.method, self.n_boot, seed, self.level, self.x_column, self.rule,
                        self.bootstrap)

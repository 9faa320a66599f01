"""The study analysis: from a results table to every law, limit and multiplier of a study,
with intervals propagated from stage to stage."""

from scaling.analysis.study import StudyAnalysis, analyze_study, infer_main_budget
from scaling.analysis.types import BestRun, Curve, Multiplier, Settings

__all__ = ["BestRun", "Curve", "Multiplier", "Settings", "StudyAnalysis", "analyze_study",
           "infer_main_budget"]

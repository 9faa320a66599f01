"""``dcsl sweep plan``: a study reviewed before compute is spent. Runs and FLOPs per stage,
time on this machine from a measured probe and GPU-hours, design warnings with their fixes,
and whether each law the analysis fits will be identifiable (simulated); as text or JSON.
"""

from sweeps.review.estimate import PlanSummary, StageRuns, gpu_hours, summarize
from sweeps.review.planreview import Finding, PlanOptions, PlanReview, review
from sweeps.review.planview import render_text, to_json
from sweeps.review.probe import Throughput, measure

__all__ = [
    "Finding", "PlanOptions", "PlanReview", "PlanSummary", "StageRuns", "Throughput", "gpu_hours",
    "measure", "render_text", "review", "summarize", "to_json",
]

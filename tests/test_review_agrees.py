"""The design review predicts the fits: `dcsl sweep plan` on the demo's study file against the
fits of the demo's own results (tests/fixtures/demo: the tables a full `dcsl demo` wrote, seed
0, on a 2-core AMD EPYC; rebuild them with `dcsl demo` and `cp demo-output/results.csv
demo-output/tuning.csv tests/fixtures/demo/`). The quick demo's test does the same for a study
too small to identify most of its laws (tests/test_studies.py)."""

from __future__ import annotations

import pandas as pd
from review_agreement import disagreements

from scaling import analyze_study
from sweeps.review.planreview import PlanOptions, review
from sweeps.study import load_study


def test_the_demo_review_predicts_the_demos_fits(repo_root, tmp_path):
    study = load_study(repo_root / "sweeps" / "studies" / "demo.yaml", root=tmp_path / "root")
    plan = review(study, PlanOptions(probe=False))
    fixture = repo_root / "tests" / "fixtures" / "demo"
    fitting = study.analysis
    analysis = analyze_study(pd.read_csv(fixture / "results.csv"), tuning=pd.read_csv(fixture / "tuning.csv"),
                             n_boot=200, bootstrap=fitting.bootstrap, x_column=fitting.x_column,
                             main_budget=study.main_budget)
    assert not disagreements(plan, analysis), disagreements(plan, analysis)
    # What the review says of repeated data, the analysis finds: the standard recipe's decay
    # is identified, the regularized recipe (16 epochs, one budget) cannot be fitted.
    rep = {r.recipe: r for r in plan.simulation.repeated}
    assert rep["regularized"].missing and not analysis.repeated["regularized"].decay
    assert [m.split(" (")[0] for m in rep["regularized"].missing] == [
        m.split(" (")[0] for m in analysis.repeated["regularized"].missing]
    assert rep["standard"].identified_share >= 0.8 and analysis.repeated["standard"].decay is not None

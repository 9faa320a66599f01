"""`dcsl sweep plan` as a design review: counts that match launch, warnings, time, JSON."""

import json
import re

import pytest
import yaml
from test_sweep import tiny_study

from dcsl_cli import main as dcsl
from sweeps.execution.launcher import launch
from sweeps.planning.plan import train_spec
from sweeps.planning.tune import point
from sweeps.review.estimate import summarize
from sweeps.review.planreview import PlanOptions, design_findings, planned_sizes, review, size_info
from sweeps.runs.snapshot import Snapshot
from sweeps.study.study import load_study

QUICK = PlanOptions(probe=False, sims=0)


class StopAfterFirstRound(Exception):
    pass


def overlapping_study(tmp_path, store):
    """Two recipes whose first rounds share runs: the standard grid's points at weight decay
    0.1 are lattice points of the regularized search, whose start is one of them (the sweep
    tests' tiny study)."""
    return tiny_study(tmp_path, store)


def test_first_round_count_is_what_launch_runs(tmp_path, bible_store, torch_one_thread):
    study = overlapping_study(tmp_path, bible_store)
    plan = summarize(study)
    # The grid's 4 points and the search's start + 4 neighbours share 3 runs.
    assert plan.table["runs"].sum() == 9 and plan.total_runs_now == 6
    rows = {(st.stage, st.detail): st for st in plan.stages}
    assert rows[("tuning, round 1", "standard")].runs == 4
    assert rows[("tuning, round 1", "regularized")].runs == 2
    assert "3 more shared" in rows[("tuning, round 1", "regularized")].note
    assert not rows[("tuning, later rounds", "regularized")].exact

    lines = []

    def log(line):
        if line.startswith("[round 2]"):
            raise StopAfterFirstRound  # the first round has run in full
        lines.append(line)

    with pytest.raises(StopAfterFirstRound):
        launch(study, log=log)
    launched = next(int(m.group(1)) for line in lines if (m := re.match(r"\[round 1\] launching (\d+) runs", line)))
    snap = Snapshot.read(study.root)
    assert launched == plan.total_runs_now
    assert sum(state == "succeeded" for state in snap.states.values()) == plan.total_runs_now


def _expected_ids(study, cells):
    """Run ids of (budget, size, epochs, lr, weight decay) points, computed by hand below."""
    return {train_spec(study, "unprepared", b, s, point({"epochs": e, "lr": lr, "weight_decay": wd})).run_id
            for b, s, e, lr, wd in cells}


def test_demo_and_paper_counts(repo_root):
    demo = load_study(repo_root / "sweeps" / "studies" / "demo.yaml", root=repo_root / "no-such-root")
    sizes = demo.sizes
    # standard at 128k: epochs 8 and its neighbours 4, 16 (lr 3e-3, decay 0.1); regularized at
    # 128k: decay 1.6 and its neighbours 0.8, 3.2 (16 epochs); standard repeats at 8k-64k for
    # three sizes, each a search of its own.
    cells = [(128_000, s, e, 3e-3, 0.1) for s in sizes for e in (4, 8, 16)]
    cells += [(128_000, s, 16, 3e-3, wd) for s in sizes for wd in (0.8, 1.6, 3.2)]
    cells += [(b, s, e, 3e-3, 0.1) for b in (8_000, 16_000, 32_000, 64_000)
              for s in ("tiny-16k", "tiny-50k", "tiny-100k") for e in (4, 8, 16)]
    plan = summarize(demo)
    assert plan.total_runs_now == len(_expected_ids(demo, cells)) == 66
    stages = {st.stage: st for st in plan.stages}
    # Members keep the tuned point, so member 0 is the tuned run: 3 new runs per size.
    assert stages["ensemble members"].runs == 5 * 3 and stages["ensemble evals"].runs == 5
    assert stages["teachers"].runs == 1 and stages["students"].runs == 1 and stages["evals"].runs == 4

    paper = load_study(repo_root / "sweeps" / "studies" / "paper.yaml", root=repo_root / "no-such-root")
    cells = []
    for b in paper.budgets:
        for s in paper.sizes:
            cells += [(b, s, e, lr, 0.1) for e, lr in ((4, 3e-3), (2, 3e-3), (8, 3e-3), (4, 1e-3), (4, 1e-2))]
            cells += [(b, s, e, lr, wd) for e, lr, wd in ((8, 3e-3, 0.8), (4, 3e-3, 0.8), (16, 3e-3, 0.8),
                                                          (8, 1e-3, 0.8), (8, 1e-2, 0.8), (8, 3e-3, 0.4),
                                                          (8, 3e-3, 1.6))]
    plan = summarize(paper)
    assert plan.total_runs_now == len(_expected_ids(paper, cells)) == 192
    stages = {st.stage: st for st in plan.stages}
    assert stages["ensemble members"].runs == 16 * 5 and stages["ensemble evals"].runs == 16
    assert stages["teachers"].runs == 3 and stages["students"].runs == 3 and stages["evals"].runs == 2 + 1 + 3
    later = [st for st in plan.stages if st.stage == "tuning, later rounds"]
    assert later and all(not st.exact and st.runs_max >= st.runs for st in later)


def variant(tmp_path, repo_root, name, change):
    """The demo study with one change, written next to the test."""
    data = yaml.safe_load((repo_root / "sweeps" / "studies" / "demo.yaml").read_text())
    change(data)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_study(path, root=tmp_path / f"{name}-root")


def test_nested_ensemble_evals_are_counted_once_per_rule(tmp_path, repo_root):
    """Nested evals score the ensemble once per combination rule: the plan counts what the
    evals stage plans (sweeps.planning.eval_rules), not one run per model."""
    def nested(data):
        data["eval"]["nested_ensembles"] = True
        data["ensembles"]["rules"] = ["logit-mean", "prob-mean", "uniform-soup"]

    plain = {st.stage: st for st in summarize(load_study(repo_root / "sweeps" / "studies" / "demo.yaml",
                                                         root=tmp_path / "plain")).stages}
    study = variant(tmp_path, repo_root, "nested", nested)
    stages = {st.stage: st for st in summarize(study).stages}
    assert stages["evals"].runs == plain["evals"].runs + 2


def codes(study):
    return {f.code for f in review(study, QUICK).findings}


# What each warning needs; the demo triggers only the embedding one (its two smallest sizes
# are mostly input embedding and output head at vocab 512).
def with_sizes(*sizes):
    def change(data):
        data["sizes"] = list(sizes)
        data["recipes"]["standard"]["repeat"]["sizes"] = list(sizes[:3])
        for d in data["distill"]:
            d["teacher_size"] = d["student_size"] = sizes[1]
    return change


VARIANTS = {
    "few-sizes": with_sizes("tiny-16k", "tiny-50k", "tiny-100k"),
    "narrow-sizes": with_sizes("tiny-50k", "tiny-100k", "tiny-200k", "tiny-400k"),
    "few-rounds": lambda d: d["recipes"]["regularized"].update(max_rounds=1),
    "few-members": lambda d: d["ensembles"].update(members=3) or d["distill"][0].update(members=3),
    "few-budgets": lambda d: d["recipes"]["standard"]["repeat"].update(budgets=["64k"]),
}


def test_each_warning_fires_on_its_study_and_the_demo_has_only_the_embedding_and_k_law_ones(
        tmp_path, repo_root):
    demo = variant(tmp_path, repo_root, "demo", lambda d: None)
    # The demo's 4 members give each K-law 4 points over 0.6 decades: its fits say so on every
    # K-curve, and so does the review, once, in the same words.
    assert codes(demo) == {"embedding-heavy", "few-dof", "narrow-span"}
    k_law = [f.message for f in review(demo, QUICK).findings if f.code in ("few-dof", "narrow-span")]
    assert all(m.startswith("each ensemble's K-law: ") for m in k_law), k_law
    for code, change in VARIANTS.items():
        found = codes(variant(tmp_path, repo_root, code, change))
        assert code in found, (code, found)
    few = next(f for f in review(variant(tmp_path, repo_root, "f", VARIANTS["few-rounds"]), QUICK).findings
               if f.code == "few-rounds")
    assert "5 cells risk ending uncertified" in few.message and "max_rounds >= 2" in few.message
    # Bigger sizes at the same vocabulary are not embedding-dominated.
    big = variant(tmp_path, repo_root, "big", with_sizes("tiny-100k", "tiny-200k", "tiny-400k", "tiny-800k",
                                                         "tiny-1.6m"))
    assert "embedding-heavy" not in codes(big)
    info = {s.name: s for s in (size_info(n, 512) for n in planned_sizes(demo))}
    assert [s.name for s in info.values() if s.vocab_share > 0.5] == ["tiny-16k", "tiny-50k"]
    assert all(0 < s.embedding_share < 0.5 for s in info.values())
    assert {f.code for f in design_findings(demo, tuple(info.values()))} == {"embedding-heavy"}


def test_a_budget_larger_than_the_store_is_an_error_and_plan_exits_non_zero(tmp_path, repo_root, capsys):
    study = variant(tmp_path, repo_root, "big-budget", lambda d: d.update(budgets=["8k", "16k", "32k", "64k",
                                                                                    "128k", "256k"]))
    errors = review(study, QUICK).errors
    assert [e.code for e in errors] == ["budget-too-large"] and "256,000" in errors[0].message
    with pytest.raises(SystemExit) as exit_info:
        dcsl(["sweep", "plan", str(study.path), "--root", str(study.root), "--no-probe", "--sims", "0"])
    assert exit_info.value.code != 0
    captured = capsys.readouterr()
    # Positioned at the budget in the study file, as launch says it (sweeps.planning.preflight).
    at = re.escape(str(study.path)) + r":\d+:\d+: budgets.5: budget 256,000 tokens exceeds"
    assert re.search(r"error: " + at, captured.out)
    assert re.match(r"dcsl sweep: " + at, captured.err)


def test_plan_before_the_store_exists_with_no_probe_and_json(tmp_path, repo_root, capsys):
    root = tmp_path / "root"
    args = ["sweep", "plan", str(repo_root / "sweeps" / "studies" / "demo.yaml"), "--root", str(root)]
    with pytest.raises(SystemExit) as exit_info:
        dcsl([*args, "--no-probe", "--sims", "4", "--n-boot", "20"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "= launch's first round" in text and "probe skipped (--no-probe)" in text
    assert "CPU-hours" in text and "at parallelism 2" in text and "identifiability, simulated" in text
    assert not (root / "store").exists()  # plan prepares nothing

    with pytest.raises(SystemExit) as exit_info:
        dcsl([*args, "--json", "--sims", "4", "--n-boot", "20", "--assume-law", "size=2e4,1,2.8"])
    assert exit_info.value.code == 0
    data = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
    assert data["first_round_runs"] == 66 and data["vocab"] == 512
    assert data["throughput"]["measured"] is False and "does not exist yet" in data["throughput"]["note"]
    assert data["simulation"]["assumed"]["size"] == {"A": 2e4, "alpha": 1.0, "E": 2.8}
    assert {law["law"] for law in data["simulation"]["laws"]} == {"size", "ensemble", "joint", "data"}
    assert data["time"]["first_round"]["cpu_hours"] > 0

    with pytest.raises(SystemExit) as exit_info:
        dcsl([*args, "--no-probe", "--assume-law", "size=1,2"])
    assert exit_info.value.code == 2 and "expected size=A,alpha,E" in capsys.readouterr().err


def test_the_probe_measures_this_cpu_when_the_store_exists(tmp_path, bible_store, torch_one_thread):
    study = overlapping_study(tmp_path, bible_store)
    measured = review(study, PlanOptions(sims=0))
    tp = measured.throughput
    assert tp.measured and set(tp.tokens_per_s) == {"tiny-50k"} and tp.tokens_per_s["tiny-50k"] > 0
    assert tp.cpu and tp.threads == 1 and tp.seconds < 30
    assert measured.time.first_round_s > 0 and measured.time.parallelism == 1  # the debug executor
    skipped = review(study, QUICK).throughput
    assert not skipped.measured and "--no-probe" in skipped.note


def test_the_review_simulates_the_studys_own_design(tmp_path, repo_root):
    options = PlanOptions(probe=False, sims=12, n_boot=50)
    demo = review(variant(tmp_path, repo_root, "demo", lambda d: None), options)
    size = demo.simulation.law("size", 128_000)
    assert size.x == tuple(float(s.total) for s in demo.sizes)  # total parameters, as the analysis fits
    assert size.identifiable_share >= 0.8 and demo.simulation.law("data").identifiable_share >= 0.8
    assert not [f for f in demo.findings if f.code == "unidentifiable-size"]

    three = review(variant(tmp_path, repo_root, "three", with_sizes("tiny-16k", "tiny-50k", "tiny-100k")), options)
    assert three.simulation.law("size").identifiable == 0 and three.simulation.law("joint").identifiable == 0
    few = next(f for f in three.findings if f.code == "few-sizes")
    assert "regularized size law 0%" in few.message and "double limit 0%" in few.message

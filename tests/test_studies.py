"""The shipped studies: the paper's plans as expected; the quick demo runs end to end."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from sweeps.review.estimate import gpu_hours, summarize
from sweeps.study.profiles import load_profile, make_executor
from sweeps.study.study import load_study


def test_paper_study_plans_the_papers_runs(repo_root):
    study = load_study(repo_root / "sweeps" / "studies" / "paper.yaml")
    s = summarize(study)
    # 16 cells per recipe. First round: the start point and its lattice neighbours
    # (4 for the standard recipe's two free axes, 6 for the regularized recipe's three).
    assert len(s.table) == 32
    assert s.total_runs_now == 16 * 5 + 16 * 7
    assert s.full_lattice_runs == 16 * 7 * 6 + 16 * 7 * 6 * 8
    assert s.member_runs == 16 * 5
    assert study.training.seq_len == 4096 and study.training.batch_size == 64
    assert study.budgets == (209_715_200, 419_430_400, 838_860_800, 1_677_721_600)
    assert 1e21 < s.total_flops_now < 1e22 and gpu_hours(s.total_flops_now, 0.4) > 1000


@pytest.mark.slurm
def test_paper_study_sbatch_parameters(repo_root, tmp_path, slurm_cluster):
    """What submitit would submit for the paper study's profile (nothing is submitted)."""
    study = load_study(repo_root / "sweeps" / "studies" / "paper.yaml")
    assert study.executor.kind == "slurm"
    executor = make_executor(load_profile(study.executor.profile), tmp_path)
    text = executor._executor._make_submission_file_text(command="echo run", uid="paper")
    for line in ("#SBATCH --gpus-per-node=1", "#SBATCH --partition=gpu", "#SBATCH --requeue",
                 "#SBATCH --signal=USR2@180", "#SBATCH --time=720"):
        assert line in text


def test_demo_studies_plan(repo_root):
    for name in ("demo.yaml", "demo-quick.yaml"):
        study = load_study(repo_root / "sweeps" / "studies" / name)
        s = summarize(study)
        assert s.total_runs_now > 0 and study.executor.kind == "local"
        # Data-scaling repeats: one run at the (future) tuned point, or a search of their own.
        for recipe in study.recipes.values():
            cells = s.table[(s.table.recipe == recipe.name)
                            & s.table.budget_tokens.isin(recipe.repeat_budgets)]
            assert len(cells) == len(recipe.repeat_budgets) * len(recipe.repeat_sizes)
            assert (cells.runs >= 1).all() and (cells.flops > 0).all()
            if recipe.repeat_budgets and recipe.repeat_rounds == 0:
                assert (cells.search == "repeat").all() and (cells.runs == 1).all()


@pytest.mark.slow
def test_quick_demo_end_to_end(tmp_path):
    from sweeps.demos.demo import run_demo

    lines: list[str] = []
    result = run_demo(quick=True, out=tmp_path / "demo", n_boot=50, log=lines.append)
    assert not result["failed"], result["failed"]
    root = tmp_path / "demo"
    table = pd.read_parquet(root / "results.parquet")
    done = table[table.status == "succeeded"]
    assert {"train", "ensemble", "distill", "eval"} <= set(done.kind)
    assert {"standard", "regularized"} <= set(done[done.kind == "train"].recipe)
    assert set(done[done.kind == "ensemble"].K) == {1, 2, 3}
    assert {"arc_easy", "piqa", "sciq"} <= set(done[done.kind == "eval"].task)
    report = (root / "report" / "report.md").read_text()
    assert "What this study shows" in report and "Data scaling laws" in report
    assert (root / "report" / "report.html").is_file()
    assert list((root / "report" / "figures").glob("*.png"))
    assert any(line.startswith("what the demo shows") for line in lines)
    # The design review predicted these fits: a study too small to identify most of its laws.
    from review_agreement import disagreements

    from scaling import analyze_study
    from sweeps.review.planreview import PlanOptions, review
    from sweeps.study import load_study as load

    study = load(repo_study("demo-quick.yaml"), root=root)
    plan = review(study, PlanOptions(probe=False))
    fitting = study.analysis
    analysis = analyze_study(table, n_boot=50, bootstrap=fitting.bootstrap, x_column=fitting.x_column,
                             main_budget=study.main_budget)
    assert not disagreements(plan, analysis), disagreements(plan, analysis)
    assert plan.simulation.law("size").identifiable_share < 0.5
    assert not analysis.regularized[8_000].fit.identifiable
    # It shows at least the overfitting and the ensemble phenomena.
    checks = result["checks"]
    assert checks["standard recipe stops improving or overfits as size grows"] is True
    assert checks["ensembles beat single models"] is True
    # Planned again from its finished root, the evals stage plans its evals without loading
    # eval data (the pin launch recorded) or importing torch.
    counts = plan_in_a_fresh_process(repo_study("demo-quick.yaml"), root, Path(__file__).resolve().parent.parent)
    assert counts["evals"] == len(done[done.kind == "eval"].run_id.unique()) > 0
    # Running it again does nothing new: every run is already finished.
    again = run_demo(quick=True, out=root, n_boot=0, log=lambda _: None)
    assert again["launched"] == 0
    assert json.loads((root / "runs" / done.run_dir.iloc[0].split("/")[-1] / "status.json").read_text())[
        "attempts"] == 1
    # Runs lost and retrained from nothing in a new process, with the same seeds, come back
    # with the same losses, and the analysis gives the same headline numbers. (The adaptive
    # search replays from equal results: tests/test_fault_injection.py checks search.json.)
    rerun_root = tmp_path / "rerun"
    shutil.copytree(root, rerun_root)
    shutil.rmtree(rerun_root / "report")
    (rerun_root / "results.parquet").unlink()
    # Ensemble members: launch plans them from the tuned points whatever is on disk (a lost
    # run of an earlier tuning round stays a decision recorded in search.json instead).
    members = done[(done.kind == "train") & (done.role == "member")].drop_duplicates("run_id")
    lost = members.sort_values("run_id").run_dir.iloc[:3]
    for run_dir in lost:
        shutil.rmtree(rerun_root / "runs" / run_dir.split("/")[-1])
    fresh = run_demo(quick=True, out=rerun_root, n_boot=50, log=lambda _: None)
    assert fresh["launched"] == len(lost) == 3 and not fresh["failed"]
    assert fresh["headline"].keys() == result["headline"].keys() and result["headline"]
    for name, value in result["headline"].items():
        assert fresh["headline"][name] == pytest.approx(value, rel=1e-6, abs=1e-9, nan_ok=True), name
    # `dcsl report ROOT` reproduces the demo's own report (its settings and findings come
    # from analysis.json beside the tables).
    import subprocess
    import sys

    redone = subprocess.run([sys.executable, "-m", "dcsl_cli", "report", str(root), "--n-boot", "50",
                             "--report-dir", str(tmp_path / "redone")], capture_output=True, text=True)
    assert redone.returncode == 0, redone.stderr
    assert (tmp_path / "redone" / "report.md").read_text() == report
    # Two replicates side by side: the demo again with --seed 1, compared.
    seed1 = run_demo(quick=True, out=tmp_path / "seed1", n_boot=50, seed=1, log=lambda _: None)
    assert not seed1["failed"]
    compared = subprocess.run([sys.executable, "-m", "dcsl_cli", "compare", str(root), str(tmp_path / "seed1"),
                               "--labels", "seed0,seed1", "--n-boot", "50", "--compare-dir", str(tmp_path / "cmp")],
                              capture_output=True, text=True)
    assert compared.returncode == 0, compared.stderr
    assert "standard best" in compared.stdout and "ensembles beat single models" in compared.stdout
    page = (tmp_path / "cmp" / "compare.md").read_text()
    assert "| quantity | seed0 | seed1 | intervals overlap |" in page
    assert (tmp_path / "cmp" / "compare_loss_vs_params.png").is_file()
    again_table = pd.read_parquet(rerun_root / "results.parquet")
    losses = done.drop_duplicates("run_id").set_index("run_id")["val_loss"].dropna()
    rerun = again_table.drop_duplicates("run_id").set_index("run_id")["val_loss"]
    assert set(losses.index) <= set(rerun.index)
    assert (rerun[losses.index] - losses).abs().max() < 1e-6


def repo_study(name: str):
    from pathlib import Path

    return Path(__file__).resolve().parent.parent / "sweeps" / "studies" / name


def test_a_grid_recipes_repeats_plan_one_run_each(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text("""\
name: g
data: {prepare: {source: bible, vocab_size: 512, val_tokens: 8k}}
budgets: [8k, 16k]
sizes: [tiny-50k]
lattice: {epochs: [2, 4, 8], lr: [3.0e-3, 1.0e-2], weight_decay: [0.1, 1.6]}
recipes:
  standard: {weight_decay: 0.1, search: grid, budgets: [8k], repeat: {budgets: [16k], sizes: [tiny-50k]}}
""")
    table = summarize(load_study(path, root=tmp_path / "root")).table.set_index("search")
    assert table.loc["grid", "runs"] == 6 and table.loc["repeat", "runs"] == 1


PLAN_IN_A_FRESH_PROCESS = """
import sys
import eval.tasks
def refuse(*args, **kwargs):
    raise AssertionError("planning loaded eval data")
eval.tasks.load_task = eval.tasks.load_tasks = eval.tasks.data_identity = refuse
from sweeps.runs import read_index
from sweeps.runs.kinds import KINDS
from sweeps.runs.snapshot import Snapshot
from sweeps.planning.preflight import EVAL_DATA
from sweeps.planning.stages import plan_all
from sweeps.study.study import load_study
study = load_study(sys.argv[1], root=sys.argv[2])
index = read_index(study.root)
pins = index.pinned if index is not None else {EVAL_DATA: "sha256:pinned", "store_id": "unprepared"}
planned = plan_all(study, Snapshot.read(study.root, {EVAL_DATA: pins[EVAL_DATA]}), pins["store_id"])
assert "torch" not in sys.modules and "lightning" not in sys.modules, "planning imported torch"
print(sorted(KINDS), {stage: len(runs) for stage, runs in planned.items()})
"""


def plan_in_a_fresh_process(study_file: Path, root: Path, cwd: Path) -> dict[str, int]:
    """Runs each stage plans for ``root`` (with the pins its launch recorded), planned in a new
    process in which torch must not be imported and loading eval data fails."""
    import ast
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", PLAN_IN_A_FRESH_PROCESS, str(study_file), str(root)],
                         capture_output=True, text=True, cwd=cwd)
    assert out.returncode == 0, out.stderr[-2000:]
    kinds, counts = out.stdout.strip().split("] ", 1)
    assert kinds + "]" == "['distill', 'ensemble', 'eval', 'generate', 'train']"
    return ast.literal_eval(counts)


def test_planning_imports_no_torch_and_opens_no_dataset(repo_root, tmp_path):
    """Planning expands a snapshot of the run store into runs: no torch, no eval data loaded
    (the eval data's identity is pinned by the launcher and read from the snapshot). The
    quick demo's test plans its finished root the same way, where the evals stage plans."""
    counts = plan_in_a_fresh_process(repo_root / "sweeps" / "studies" / "demo.yaml", tmp_path, repo_root)
    assert sum(counts.values()) > 0

import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from pretrain.rundir import RunDir
from sweeps.collect import collect, status_table
from sweeps.execution.launcher import launch
from sweeps.runs.runstore import run_state
from sweeps.runs.snapshot import Snapshot
from sweeps.study.study import load_study

QUIET = {"log": lambda _: None}


def tiny_study(tmp_path, store, lrs="[3.0e-3, 1.0e-2]", extra=""):
    text = f"""\
    name: t
    data: {{store: {store.path}}}
    budgets: [4k]
    sizes: [tiny-50k]
    training: {{batch_size: 8, seq_len: 32, threads: 1}}
    lattice: {{epochs: [1, 2], lr: {lrs}, weight_decay: [0.0, 0.1, 0.8]}}
    recipes:
      standard: {{weight_decay: 0.1, search: grid}}
      regularized:
        search: adaptive
        start: {{epochs: 1, lr: 3.0e-3, weight_decay: 0.1}}
    executor: {{kind: debug}}
    """ + extra
    path = tmp_path / "study.yaml"
    path.write_text(textwrap.dedent(text))
    return load_study(path, root=tmp_path / "root")


def test_launch_collect_and_relaunch_is_a_no_op(tmp_path, bible_store):
    study = tiny_study(tmp_path, bible_store)
    report = launch(study, **QUIET)
    assert report.launched >= 4 and not report.failed
    table, tuning, summary = collect(study)
    train = table[table.status == "succeeded"]
    assert set(train.recipe) == {"standard", "regularized"}
    std = train[train.recipe == "standard"]
    assert set(zip(std.epochs, std.lr, strict=True)) >= {(1, 3e-3), (1, 1e-2), (2, 3e-3), (2, 1e-2)}
    assert (std.weight_decay == 0.1).all() and std.val_loss.notna().all()
    assert {"n_params", "budget_tokens", "val_loss", "K", "rule"} <= set(table.columns)
    reg = tuning.set_index("recipe").loc["regularized"]
    assert reg.val_loss == train[train.recipe == "regularized"].val_loss.min()
    assert reg.runs_used < reg.lattice_size
    assert launch(study, **QUIET).launched == 0  # everything finished: nothing to do


def test_a_failing_run_is_recorded_and_the_others_finish(tmp_path, bible_store):
    study = tiny_study(tmp_path, bible_store, lrs="[3.0e-3, 1.0e+30]",
                       extra="    # a diverging learning rate\n")
    study = study.__class__(**{**study.__dict__, "recipes": {"standard": study.recipes["standard"]}})
    report = launch(study, **QUIET)
    assert len(report.failed) == 2 and report.succeeded == 2  # lr 1e30 at 1 and 2 epochs
    counts, failures = status_table(study)
    assert counts.failed.sum() == 2 and counts.succeeded.sum() == 2
    assert all("diverged at step" in line for line in failures)
    table, _, summary = collect(study)
    assert len(summary["failed"]) == 2 and table[table.status == "failed"].val_loss.isna().all()
    assert launch(study, **QUIET).launched == 0  # failed runs stay failed ...
    assert launch(study, retry_failed=True, **QUIET).launched == 2  # ... unless asked


def test_a_stale_run_is_detected_and_relaunched(tmp_path, bible_store):
    study = tiny_study(tmp_path, bible_store)
    launch(study, **QUIET)
    snap = Snapshot.read(study.root)
    victim = next(iter(snap.dirs.values()))
    # What a SIGKILLed job leaves: status "running", no result, nobody holding the lock.
    run = RunDir(victim)
    (victim / "result.json").unlink()
    run.update_status(state="running")
    assert run_state(victim) == "stale"
    report = launch(study, **QUIET)
    assert report.launched == 1 and run_state(victim) == "succeeded"


@pytest.mark.slow
def test_cli_local_executor_and_tables(tmp_path, bible_store):
    study = tiny_study(tmp_path, bible_store)
    root = tmp_path / "cli-root"
    cmd = [sys.executable, "-m", "dcsl_cli", "sweep"]
    out = subprocess.run(cmd + ["launch", str(study.path), "--root", str(root), "--executor", "local",
                                "--parallelism", "2"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "[round 1] launching" in out.stdout and "(tune " in out.stdout
    table = pd.read_parquet(root / "results.parquet")
    assert (table[table.status == "succeeded"].val_loss > 0).all()
    status = subprocess.run(cmd + ["status", str(study.path), "--root", str(root)],
                            capture_output=True, text=True, check=True)
    assert "succeeded" in status.stdout and "standard" in status.stdout
    # Runs share worker processes (start-up amortised): at most two workers per round.
    rounds = out.stdout.count("] launching ")
    runs = list((root / "runs").iterdir())
    pids = {RunDir(d).status()["pid"] for d in runs}
    assert len(pids) <= 2 * rounds < len(runs)


def test_workers_skip_failed_runs_and_operational_changes_are_accepted(tmp_path, bible_store):
    from dataclasses import replace

    from sweeps.execution.worker import run_one

    study = tiny_study(tmp_path, bible_store)
    launch(study, **QUIET)
    run_dir = next(iter(Snapshot.read(study.root).dirs.values()))
    run = RunDir(run_dir)
    run.update_status(state="failed", error="boom")
    assert run_one(run_dir, log_to_stdout=False) == "failed"  # another worker already ran it
    assert run.status()["attempts"] == 1
    # Same run, new operational settings (a smaller micro-batch after running out of memory).
    spec_json = run.spec()
    from pretrain.spec import TrainSpec

    spec = replace(TrainSpec.from_json(spec_json), micro_batch_size=4)
    run.write_spec(spec.to_json())
    assert run.spec()["micro_batch_size"] == 4 and run.spec()["id"] == spec_json["id"]


def test_shifted_members_never_land_on_tuning_points(tmp_path, bible_store):
    from sweeps.planning.plan import member_specs, store_identity

    extra = "ensembles: {from: regularized, members: 2, member_rule: {epochs: 2, weight_decay: 0.5}}\n"
    study = tiny_study(tmp_path, bible_store, extra=extra)
    launch(study, **QUIET)
    snap = Snapshot.read(study.root)
    store_id, _ = store_identity(study)
    (members,) = member_specs(study, snap, store_id).values()
    assert [m.init_seed for m in members] == [1, 2]  # shifted point: seeds start at 1
    table, _, _ = collect(study)
    member_rows = table[table.run_id.isin([m.run_id for m in members])]
    assert set(member_rows.recipe) == {"ensemble-member"}


def test_only_runs_that_diverged_count_toward_a_certificate(tmp_path, bible_store):
    from sweeps.planning.plan import cell_points, cell_tuned, settled, store_identity
    from sweeps.planning.tune import neighbours

    study = tiny_study(tmp_path, bible_store)
    launch(study, **QUIET)
    store_id, _ = store_identity(study)
    recipe, cell = study.recipes["regularized"], (study.budgets[0], study.sizes[0])

    def outcome():
        return cell_tuned(study, Snapshot.read(study.root), store_id, recipe, *cell)[0]

    before = outcome()
    assert before.certified
    neighbour = neighbours(before.best, study.lattice, recipe.free_axes())[0]
    run = RunDir(Snapshot.read(study.root).dirs[cell_points(study, Snapshot.read(study.root), store_id,
                                                            recipe, *cell).ids[neighbour]])
    # A crash says nothing about the hyperparameters: the best point is no longer certified ...
    run.update_status(state="failed", error="OutOfMemoryError: CPU out of memory")
    after = outcome()
    assert after.best == before.best and not after.certified and neighbour in after.missing_neighbours
    # ... the search has still ended (later stages go on), and the point is not retried unasked.
    assert settled(study, Snapshot.read(study.root), store_id, recipe, *cell)[0].best == before.best
    assert launch(study, **QUIET).launched == 0
    _, tuning, _ = collect(study)
    row = tuning.set_index("recipe").loc["regularized"]
    assert not row.certified and row.neighbours_missing == 1
    # A diverged run was trained and is not better: it certifies. (The status a diverged run
    # writes: test_train.py trains one to NaN and checks it; the error text is not read.)
    run.update_status(error="some text the search does not read", diverged=True)
    assert outcome().certified


def test_runs_left_behind_by_an_edited_study_are_not_resumed(tmp_path, bible_store):
    from dataclasses import replace

    from sweeps.execution.launcher import _materialise
    from sweeps.planning.plan import store_identity, train_spec
    from sweeps.planning.tune import point

    study = tiny_study(tmp_path, bible_store)
    study = study.__class__(**{**study.__dict__, "recipes": {"standard": study.recipes["standard"]}})
    store_id, _ = store_identity(study)
    # A run an earlier version of the study planned (another budget) and never finished.
    old = train_spec(replace(study, budgets=(8_000,)), store_id, 8_000, "tiny-50k",
                     point({"epochs": 1, "lr": 3e-3, "weight_decay": 0.1}))
    orphan = _materialise(study.root, old)
    report = launch(study, **QUIET)
    assert report.launched == 4 and run_state(orphan) == "pending"


def test_renamed_recipes_give_the_same_analysis(tmp_path, bible_store):
    """scaling reads roles, never recipe names: renaming every recipe changes no fit."""
    from scaling.analysis import analyze_study

    members = "ensembles: {from: regularized, members: 2, member_rule: {epochs: 1, weight_decay: 1}}\n"
    study = tiny_study(tmp_path, bible_store, extra=members)
    launch(study, **QUIET)
    renamed_text = study.path.read_text().replace("standard: {", "baseline: {role: standard, ").replace(
        "regularized:\n", "heavy-decay:\n    role: regularized\n").replace(
        "from: regularized", "from: heavy-decay")
    renamed_path = tmp_path / "renamed.yaml"
    renamed_path.write_text(renamed_text)
    renamed = load_study(renamed_path, root=study.root)
    assert set(renamed.recipes) == {"baseline", "heavy-decay"}
    assert launch(renamed, **QUIET).launched == 0  # the same runs, by content
    tables = [collect(s)[0] for s in (study, renamed)]
    assert set(tables[1].recipe) >= {"baseline", "heavy-decay", "ensemble-member", "ensemble"}
    a, b = (analyze_study(t[t.status == "succeeded"], n_boot=0) for t in tables)
    assert a.best_standard == b.best_standard and a.best_standard
    assert a.regularized.keys() == b.regularized.keys() and a.regularized
    for budget in a.regularized:
        assert list(a.regularized[budget].y) == list(b.regularized[budget].y)
    assert {k: list(c.y) for k, c in a.ensembles.items()} == {k: list(c.y) for k, c in b.ensembles.items()}
    assert a.ensembles
    # Every row carries its training FLOPs: a run its own, an ensemble its first K members'.
    table = tables[0]
    done = table[table.status == "succeeded"]
    assert (done[done.kind == "train"].train_flops > 0).all()
    trained = done[done.kind == "train"]
    flops = dict(zip(trained.run_id, trained.train_flops, strict=True))
    ensemble = done[(done.kind == "ensemble") & (done.K == 2)].iloc[0]
    members = RunDir(ensemble.run_dir).spec()["member_ids"]
    assert ensemble.train_flops == pytest.approx(flops[members[0]] + flops[members[1]])

"""The live view's ETAs (sweeps.execution.progress) on run directories written here, its plain
lines off a terminal, ``dcsl sweep status --watch`` on a finished study, and ``dcsl sweep
plan`` saying what is left of one."""

import contextlib
import json
import os
import re
import textwrap
import time

import pytest

from pretrain.rundir import atomic_write_json
from sweeps.execution.liveview import LiveProgress, plain_line, rich_view
from sweeps.execution.progress import estimate, work_off
from sweeps.execution.runfacts import METRICS_FILE, last_rows, read_run, row_speed, total_steps_of
from sweeps.runs import claim

T = 1_700_000_000.0
"""When the newest metrics rows were written; the view is read 5 s later."""
NOW = T + 5
COLUMNS = "step,tokens,epoch,lr,train_loss,val_loss,tokens_per_s,grad_norm"
# 8 sequences of 32 tokens a step, 100 steps an epoch: (tokens - 1) // 32 // 8 == 100
PER_STEP, TOKENS = 256, 256 * 100 + 1


def spec(size, epochs=1, kind="train", **more):
    return {"kind": kind, "size": size, "tokens": TOKENS, "seq_len": 32, "batch_size": 8,
            "epochs": epochs, **more}


def make_run(root, name, state, spec_json, rows=(), status=None, result=None):
    d = root / "runs" / f"{name}-{abs(hash(name)) % 16**10:010x}"
    d.mkdir(parents=True)
    atomic_write_json(d / "spec.json", {"id": d.name[-10:], **spec_json})
    atomic_write_json(d / "status.json", {"state": state, "attempts": 1, **(status or {})})
    if result is not None:
        atomic_write_json(d / "result.json", result)
    if rows:
        lines = [COLUMNS] + [f"{s},{s * PER_STEP},1,0.003,4.2,,{tok_s},0.9" for s, tok_s in rows]
        (d / METRICS_FILE).write_text("\n".join(lines) + "\n")
        os.utime(d / METRICS_FILE, (T, T))
    return d


@pytest.fixture
def two_sizes(tmp_path):
    """tiny-50k: one run done (100 steps at 512 tok/s in 80 s of wall clock, so 30 s beyond its
    training steps), one running at step 40 of 100 at 512 tok/s over its last three rows (2
    steps/s; an older, faster row is not counted), two pending (100 and 200 steps); tiny-100k:
    one running at step 50 of 200 at 256 tok/s, one pending (200 steps)."""
    runs = [
        make_run(tmp_path, "done-a", "succeeded", spec("tiny-50k"), rows=[(100, 500.0)],
                 status={"started": T - 100, "updated": T - 20, "total_steps": 100},
                 result={"tokens_per_s": 512.0, "steps": 100}),
        make_run(tmp_path, "run-a", "running", spec("tiny-50k"), rows=[(5, 900.0), (10, 512.0), (20, 512.0), (40, 512.0)],
                 status={"started": T - 30, "total_steps": 100}),
        make_run(tmp_path, "run-b", "running", spec("tiny-100k", epochs=2), rows=[(50, 256.0)],
                 status={"started": T - 60}),  # total steps from its spec: 2 epochs of 100
        make_run(tmp_path, "pend-a1", "pending", spec("tiny-50k")),
        make_run(tmp_path, "pend-a2", "pending", spec("tiny-50k", epochs=2)),
        make_run(tmp_path, "pend-b", "pending", spec("tiny-100k", epochs=2)),
    ]
    with contextlib.ExitStack() as stack:  # running runs hold their lock, as a worker does
        for d in runs[1:3]:
            assert stack.enter_context(claim(d))
        yield runs


def test_eta_from_each_runs_steps_left_and_measured_throughput(two_sizes):
    facts = [read_run(d, "tune") for d in two_sizes]
    view = estimate(facts, parallelism=2, now=NOW)
    left = {r.facts.name.rsplit("-", 1)[0]: r.remaining_s for r in view.runs}
    # Running: (total - step) / (tokens/s / tokens per step), less the 5 s since the last row.
    assert left["run-a"] == pytest.approx(60 / 2 - 5)
    assert left["run-b"] == pytest.approx(150 / 1 - 5)
    # Pending: steps at the size's measured tokens/s (the running and the finished run's mean,
    # both 512) plus the 30 s of start-up and validation the finished run took beyond training.
    assert left["pend-a1"] == pytest.approx(100 * PER_STEP / 512 + 30)
    assert left["pend-a2"] == pytest.approx(200 * PER_STEP / 512 + 30)
    assert left["pend-b"] == pytest.approx(200 * PER_STEP / 256 + 30)
    assert left["done-a"] == 0
    # Two workers: they free up at 25 s and 145 s; the pending runs go longest first:
    # 230 s after 25 (255), 130 after 145 (275), 80 after 255 (335).
    assert view.eta_s == pytest.approx(335)
    assert view.counts() == {"done": 1, "running": 2, "pending": 3, "failed": 0}
    assert view.unestimated == 0 and not view.finished


def test_a_running_runs_speed_is_over_its_last_rows_as_time_taken():
    rows = [{"step": str(s), "tokens_per_s": str(v)} for s, v in ((10, 900.0), (20, 400.0), (40, 800.0))]
    # 10 steps at 400 tok/s and 20 at 800; the oldest row's interval is taken as the next
    # one's (10 steps), at 900.
    assert row_speed(rows) == pytest.approx(40 / (10 / 900 + 10 / 400 + 20 / 800))
    assert row_speed(rows[-1:]) == 800
    assert row_speed([{"step": "5", "tokens_per_s": "nan"}]) is None


def test_work_off_is_longest_first_over_the_workers():
    assert work_off([], [], 4) == 0
    assert work_off([10.0], [], 4) == 10
    assert work_off([], [3.0, 3.0, 3.0, 3.0], 2) == 6
    assert work_off([5.0, 1.0], [4.0, 2.0], 2) == pytest.approx(7)  # 4 after 1, then 2 after 5
    assert work_off([5.0, 5.0, 5.0], [1.0], 2) == 6  # another launcher's third run holds a worker


def test_a_size_nothing_reported_borrows_a_measured_one_through_flops_and_the_probe(tmp_path):
    runs = [make_run(tmp_path, "run-a", "running", spec("tiny-50k"), rows=[(40, 512.0)]),
            make_run(tmp_path, "pend-c", "pending", spec("tiny-400k"))]
    with claim(runs[0]):
        facts = [read_run(d) for d in runs]
    cost = {"tiny-50k": 1e6, "tiny-400k": 4e6}
    fpt = lambda size, seq_len: cost[size]  # noqa: E731
    pend = lambda view: view.runs[1].remaining_s  # noqa: E731
    # The same FLOP/s as tiny-50k: 512 x 1e6 / 4e6 = 128 tok/s.
    assert pend(estimate(facts, 1, now=NOW, cost=fpt)) == pytest.approx(100 * PER_STEP / 128)
    # The probe says tiny-400k runs at half the FLOP/s of tiny-50k here: 64 tok/s.
    probe = {"tiny-50k": 2e9, "tiny-400k": 1e9}
    assert pend(estimate(facts, 1, now=NOW, cost=fpt, prior=probe)) == pytest.approx(100 * PER_STEP / 64)
    # Before anything reported, the probe alone: 1e9 / 4e6 = 250 tok/s.
    quiet = [read_run(runs[1])]
    assert estimate(quiet, 1, now=NOW, cost=fpt, prior=probe).eta_s == pytest.approx(100 * PER_STEP / 250)
    # A run of an earlier round lends its measurement, not its state.
    lent = estimate(quiet, 1, now=NOW, cost=fpt, reference=facts[:1])
    assert lent.eta_s == pytest.approx(100 * PER_STEP / 128) and len(lent.runs) == 1
    # Nothing to go on: the ETA is unknown, and says so; without FLOPs per token the size
    # cannot be borrowed, but the ETA of the rest stands and counts the run it left out.
    assert estimate(quiet, 1, now=NOW).eta_s is None
    view = estimate(facts, 1, now=NOW)
    assert view.eta_s == pytest.approx(60 / 2 - 5) and view.unestimated == 1


def test_a_kind_without_steps_takes_as_long_as_its_kind_did_or_says_it_is_a_guess(tmp_path):
    from sweeps.execution.liveview import eta_text

    done = {"started": T - 100, "updated": T - 20}
    runs = [make_run(tmp_path, "trained", "succeeded", spec("tiny-50k"), status=done,
                     result={"tokens_per_s": 512.0}),
            make_run(tmp_path, "eval", "pending", {"kind": "eval", "size": "tiny-50k"})]
    view = estimate([read_run(d) for d in runs], 1, now=NOW)
    # No eval has finished: as long as the mean finished run (80 s), and the ETA says so.
    assert view.runs[1].remaining_s == 80 and view.runs[1].guessed and view.guessed == 1
    assert eta_text(view) == "eta 80s (1 run of a kind not timed yet as long as the mean one)"
    scored = make_run(tmp_path, "eval-done", "succeeded", {"kind": "eval", "size": "tiny-50k"},
                      status={"started": T - 30, "updated": T - 20}, result={})
    view = estimate([read_run(d) for d in [*runs, scored]], 1, now=NOW)
    assert view.runs[1].remaining_s == 10 and not view.guessed and eta_text(view) == "eta 10s"


def test_total_steps_as_training_schedules_them():
    from distill.mixture import mixture_steps

    assert total_steps_of(spec("tiny-50k", epochs=3)) == 300
    student = spec("tiny-50k", epochs=2, kind="distill", mode="sequence", synthetic_weight=0.75)
    assert total_steps_of(student) == mixture_steps(200, 0.75) == 800
    assert total_steps_of({**student, "mode": "token", "synthetic_weight": 0.0}) == 200
    assert total_steps_of({"kind": "ensemble", "size": "tiny-50k"}) is None


def test_last_rows_reads_the_end_and_skips_a_row_being_written(tmp_path):
    path = tmp_path / METRICS_FILE
    rows = "".join(f"{s},{s * 256},1,0.003,4.2,{'4.1' if s % 10 == 0 else ''},600.0,0.9\n"
                   for s in range(1, 2001))
    path.write_text(COLUMNS + "\n" + rows + "2001,512")
    last = last_rows(path)
    assert [r["step"] for r in last] == ["1999", "2000"] and last[-1]["val_loss"] == "4.1"
    assert last_rows(tmp_path / "none.csv") == []


def test_plain_lines_off_a_terminal(two_sizes, capsys):
    view = estimate([read_run(d, stage) for d, stage in zip(two_sizes, ["tune"] * 5 + ["members"],
                                                              strict=True)], 2, now=NOW)
    line = plain_line(view, "round 1", elapsed_s=125)
    head, stages, running = line.split("; ")
    assert head == "[round 1] 1/6 runs finished (0 failed), 2 running, 3 pending, 2m05s elapsed, eta 5m35s"
    assert stages == "done per stage: tune 1/5, members 0/1"
    assert re.fullmatch(r"running: tiny-100k:\w{6} 50/200 256 tok/s eta 2m25s, "
                        r"tiny-50k:\w{6} 40/100 512 tok/s eta 25s", running)
    # The launcher's ticker: print to a captured stdout (no terminal) gives plain lines.
    ticker = LiveProgress("round 1", lambda: [read_run(d) for d in two_sizes], 2, every_s=0.0)
    assert not ticker.live
    ticker.tick()
    ticker.tick(final=True)  # nothing but the clock changed: the final line is not said twice
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("[round 1] 1/6 runs finished (0 failed), 2 running")
    assert " elapsed, eta " in out[0] and "eta ?" not in out[0]


def test_until_a_rounds_first_run_starts_its_eta_waits_for_the_workers_start_up(tmp_path):
    done = {"started": T - 100, "updated": T - 20}
    runs = [make_run(tmp_path, "trained", "succeeded", spec("tiny-50k"), status=done,
                     result={"tokens_per_s": 512.0}),
            make_run(tmp_path, "next", "pending", spec("tiny-50k"))]
    ticker = LiveProgress("round 2", lambda: [read_run(runs[1])], 1, log=lambda _: None,
                          reference=[read_run(runs[0])], start_up_s=1000.0)
    alone = 100 * PER_STEP / 512 + 30  # 100 steps at 512 tok/s and the 30 s beyond a run takes
    assert ticker.view().eta_s == pytest.approx(alone + 1000)  # before the workers are submitted
    ticker.submitting()
    assert ticker.view().eta_s == pytest.approx(alone + 1000, abs=5)
    atomic_write_json(runs[1] / "status.json", {"state": "pending", "started": time.time()})
    assert ticker.view().eta_s == pytest.approx(alone) and ticker.start_up == pytest.approx(0, abs=5)


def test_the_live_view_lists_running_runs_and_stage_totals(two_sizes):
    from rich.console import Console

    view = estimate([read_run(d, "tune") for d in two_sizes], 2, now=NOW)
    console = Console(record=True, width=160, force_terminal=False)
    console.print(rich_view(view, "round 1", 125))
    text = console.export_text()
    assert "round 1" in text and "1/6 done" in text and "eta 5m35s" in text
    assert re.search(r"run-b-\w+ +tune +\S* *50/200 +256 +2m25s", text), text
    assert re.search(r"tune +1 +2 +3 +0", text), text


def finished_study(tmp_path, store):
    """The quickest study with a search that ends: one epoch of 15 steps a run; the grid's one
    point is the search's start, which trains its two neighbours in weight decay first and
    then, only if one is better, the next one out (a later round the plan estimates)."""
    path = tmp_path / "study.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: w
        data: {{store: {store.path}}}
        budgets: [4k]
        sizes: [tiny-50k]
        training: {{batch_size: 8, seq_len: 32, threads: 1}}
        lattice: {{epochs: [1], lr: [3.0e-3], weight_decay: [0.0, 0.1, 0.8, 1.6]}}
        recipes:
          standard: {{weight_decay: 0.1, search: grid}}
          regularized:
            search: adaptive
            start: {{epochs: 1, lr: 3.0e-3, weight_decay: 0.1}}
        executor: {{kind: debug}}
        """))
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory, bible_store):
    from sweeps.execution import launch
    from sweeps.study import load_study

    tmp = tmp_path_factory.mktemp("finished")
    path = finished_study(tmp, bible_store)
    study = load_study(path, root=tmp / "root")
    report = launch(study, log=lambda _: None)
    assert report.launched in (3, 4) and not report.failed
    return path, tmp / "root", report.launched


def dcsl(args):
    from dcsl_cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code


def test_status_watch_exits_once_every_run_is_finished(finished, capsys):
    path, root, n = finished
    assert dcsl(["sweep", "status", str(path), "--root", str(root), "--watch", "--every", "0.05"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == f"[study w] {n}/{n} runs finished (0 failed), 0 running, 0 pending, done", lines


def test_plan_of_a_finished_study_shows_nothing_left(finished, capsys):
    path, root, n = finished
    args = ["sweep", "plan", str(path), "--root", str(root), "--no-probe", "--sims", "0"]
    assert dcsl(args) == 0
    text = capsys.readouterr().out
    # The search ended (certified, or out of lattice): its later-rounds estimate is all done.
    assert re.search(r"tuning, later rounds +regularized +~1 \(<= 1\) +\d +0 ", text), text
    assert re.search(rf"all stages +~\d \(<= \d\) +{n} +0 ", text), text
    assert re.search(rf"all stages ~\d runs, {n} succeeded, 0 left", text), text
    assert "left (succeeded runs taken off): ~0 CPU-hours" in text
    assert dcsl([*args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert sum(st["succeeded"] for st in data["stages"]) == n
    assert [st["runs_left"] for st in data["stages"]] == [0, 0, 0]
    assert data["time"]["left"]["run_seconds"] == 0 and data["time"]["gpu_hours_left"] == 0

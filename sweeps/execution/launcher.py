"""``dcsl sweep launch``: work a study off, stage by stage, round by round.

Each round re-reads the run store, asks the current stage for the specs it wants
now, skips what already succeeded (and what failed, unless ``retry_failed``), writes
the new run directories (spec.json, status pending), submits them, and waits showing
their progress (``sweeps.execution.liveview``). Killing the launcher loses nothing: the
runs are files, and running ``launch`` again continues where it stopped (stale runs,
whose job died, are relaunched).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from pretrain.rundir import RunDir, atomic_write_json, locked
from sweeps.execution.executors import stop, submit, wait
from sweeps.execution.liveview import LiveProgress, Prior
from sweeps.execution.memoryplan import with_planned_memory
from sweeps.execution.runfacts import read_runs
from sweeps.planning import (
    check_store_tokenizer,
    index_entries,
    pin_base,
    pin_eval_data,
    plan_all,
    preflight_checks,
    run_flops,
    store_identity,
)
from sweeps.runs import (
    SEARCH_FILE,
    Snapshot,
    read_search,
    record_index,
    runs_dir,
    search_key,
    set_aside,
)
from sweeps.study import Executor, Study

MAX_ROUNDS = 1000


@dataclass
class LaunchReport:
    launched: int = 0
    succeeded: int = 0
    failed: list[str] = field(default_factory=list)
    elsewhere: int = 0
    """Runs this launcher submitted that another launcher's worker was running."""
    job_problems: list[str] = field(default_factory=list)


def ensure_store(study: Study, log: Callable[[str], None]) -> None:
    """Prepare the study's token store if the study says how and it does not exist yet.

    Under a lock beside the store, so that launchers started together prepare it once: the
    others wait, then find it and reuse it. A temporary store that a killed preparation left
    behind (``.<store>.XXXX/``) is removed first, with a line saying so.
    """
    if (study.store / "manifest.json").exists():
        return
    if study.prepare is None:
        raise FileNotFoundError(f"token store {study.store} does not exist; run `dcsl data prepare` "
                                f"or give the study a data.prepare section")
    from pretrain.store import prepare_config, prepare_store

    store = study.store
    with locked(store.parent / f".{store.name}.lock"):
        if (store / "manifest.json").exists():
            log(f"token store {store}: prepared by another launcher meanwhile; using it")
            return
        for leftover in sorted(store.parent.glob(f".{store.name}.*")):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
                log(f"removed {leftover}, a temporary store left by a preparation that was killed")
        log(f"preparing the token store {store}")
        prepare_store(prepare_config(study.prepare, store), log=log)


def launch(study: Study, *, executor: Executor | None = None, retry_failed: bool = False,
           log: Callable[[str], None] = print, progress_every_s: float = 10.0,
           poll_s: float = 5.0, cancel_on_exit: bool = False, prior: Prior | None = None) -> LaunchReport:
    """Work the study off; see the module docstring. SIGINT or SIGTERM to the launcher stops
    the local workers it started (each at a checkpoint) and then raises KeyboardInterrupt;
    Slurm jobs keep running unless ``cancel_on_exit``. ``prior`` (the plan's probe: FLOP/s
    per size) gives the progress view its ETA before any run has reported."""
    with _sigterm_interrupts():
        return _launch(study, executor, retry_failed, log, progress_every_s, poll_s, cancel_on_exit, prior)


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (a job script's kill, a tmux pane closed) stops the launcher as Ctrl-C does,
    so it can stop its workers first; outside the main thread signals are not ours to set."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame) -> None:  # noqa: ANN001
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _launch(study: Study, executor: Executor | None, retry_failed: bool, log: Callable[[str], None],
            progress_every_s: float, poll_s: float, cancel_on_exit: bool, prior: Prior | None) -> LaunchReport:
    executor = executor or study.executor
    preflight_checks(study, executor)  # the checks sweep plan runs too: one function, no drift
    study = pin_base(study)  # a missing base fails here, before the store or any run
    ensure_store(study, log)
    if study.base is not None:
        check_store_tokenizer(study, Path(study.base.path))
    store_id, vocab = store_identity(study)
    pinned = pin_eval_data(study)  # once per launch: planning then opens no dataset
    index_pins = {"store_id": store_id, "vocab": vocab, **pinned,
                  **({"base": study.base.id} if study.base is not None else {})}
    report = LaunchReport()
    attempted: set[str] = set()
    if retry_failed:
        _reset_failed(study.root, log)
    t_start = time.time()
    start_up = None  # the workers' start-up, as the last round measured it
    for round_no in range(MAX_ROUNDS):
        # Every stage is asked every round: a stage proposes only runs whose inputs have
        # finished (a settled search, a finished member set), so members of a size whose
        # search ended start beside the searches still running, and what runs never
        # depends on timing, only on which rounds have finished.
        snap = Snapshot.read(study.root, pinned)
        by_stage = plan_all(study, snap, store_id)
        # What this round planned, for collect and status to read (they never re-plan).
        record_index(study.root, index_entries(study, by_stage, snap, store_id), index_pins)
        todo = _todo([spec for labelled in by_stage.values() for _, spec in labelled], snap, attempted)
        if not todo:
            running = [rid for rid, state in snap.states.items() if state == "running"]
            if not running:
                break
            # Another launcher's workers hold runs that later work depends on: wait for them
            # rather than stop short (each launcher would otherwise leave the rest to the other).
            log(f"waiting for {len(running)} runs that another launcher is running")
            time.sleep(poll_s)
            continue
        todo = with_planned_memory(study, executor, _longest_first(todo, vocab, study), vocab)
        for spec in todo:
            if snap.state(spec.run_id) == "unreadable":
                where = set_aside(snap.dirs[spec.run_id], snap.unreadable.get(spec.run_id, ""))
                log(f"{snap.unreadable.get(spec.run_id, spec.dirname)}: moved the damaged run to "
                    f"{where} and training it again")
        dirs = [_materialise(study.root, s) for s in todo]
        new_ids = {s.run_id for s in todo}
        # After the directories exist: a kill before this line loses no round (the pending
        # runs are proposed again and counted then).
        _count_rounds(study.root, by_stage["tune"], new_ids)
        attempted.update(new_ids)
        counts = {name: sum(spec.run_id in new_ids for _, spec in labelled)
                  for name, labelled in by_stage.items()}
        # A run an earlier launch planned but no worker ever started is not a resumption.
        never = sum(1 for _, spec in by_stage["resume"]
                    if spec.run_id in new_ids and _never_started(snap, spec.run_id))
        counts = {"planned before, not started": never, **counts, "resume": counts["resume"] - never}
        what = ", ".join(f"{name} {n}" for name, n in counts.items() if n)
        log(f"[round {round_no + 1}] launching {len(dirs)} runs ({what}) on {executor.kind} "
            f"(elapsed {time.time() - t_start:,.0f}s)")
        stage_of: dict[str, str] = {}
        for name, labelled in by_stage.items():
            for _, spec in labelled:
                stage_of.setdefault(spec.dirname, name)
        finished = [d for rid, d in snap.dirs.items() if snap.state(rid) == "succeeded"]
        ticker = _progress(f"round {round_no + 1}", dirs, stage_of, executor, log, progress_every_s,
                           study, vocab, prior, finished, start_up)
        try:
            ticker.tick()  # before the workers start: a probe, if one is needed, has the CPU to itself
            ticker.submitting()
            sub = submit(executor, dirs, study.root / "jobs")
            try:
                report.job_problems += wait(sub, on_tick=ticker.tick)
            except KeyboardInterrupt:
                ticker.close()
                log(f"launcher stopped: {stop(sub, executor, cancel_on_exit)}")
                raise
            ticker.tick(final=True)
        finally:
            ticker.close()
        start_up = start_up if ticker.start_up is None else ticker.start_up
        report.launched += len(dirs)
        final = Snapshot.read(study.root)
        for s, d in zip(todo, dirs, strict=True):
            state = final.state(s.run_id)
            report.succeeded += state == "succeeded"
            if state == "running":
                report.elsewhere += 1  # claimed by another launcher's worker, still at work
            elif state != "succeeded":
                report.failed.append(f"{d.name}: {state}")
    return report


def _count_rounds(root: Path, labelled: list, launched: set[str]) -> None:
    """One more adaptive round for every cell that launches points search.json has not seen.

    search.json records each cell's proposed runs, and is re-read and rewritten under a lock:
    a relaunch that proposes the same pending runs again, or a second launcher on the same
    study proposing the same points, counts no extra round.
    """
    proposed: dict[str, set[str]] = {}
    for label, spec in labelled:
        if spec.run_id in launched:
            proposed.setdefault(search_key(label, spec.tokens, spec.size), set()).add(spec.run_id)
    if not proposed:
        return
    with locked(Path(root) / ".search.lock"):
        search = read_search(root)
        changed = False
        for key, ids in proposed.items():
            entry = search.setdefault(key, {"rounds": 0, "runs": []})
            new = sorted(ids - set(entry["runs"]))
            if new:
                entry["rounds"] += 1
                entry["runs"] = entry["runs"] + new
                changed = True
        if changed:
            atomic_write_json(Path(root) / SEARCH_FILE, search)


def _never_started(snap: Snapshot, run_id: str) -> bool:
    if snap.state(run_id) != "pending" or run_id not in snap.dirs:
        return False
    return not RunDir(snap.dirs[run_id]).status().get("attempts")


def _todo(specs: list, snap: Snapshot, attempted: set[str]) -> list:
    """Specs that need a worker now: new ones, and pending or stale ones (a dead job's)."""
    out, seen = [], set()
    for spec in specs:
        rid = spec.run_id
        if rid in seen or rid in attempted:
            continue
        seen.add(rid)
        if snap.state(rid) in ("missing", "pending", "stale", "unreadable"):
            out.append(spec)
    return out


def _longest_first(specs: list, vocab: int | None, study: Study) -> list:
    """Training runs by estimated FLOPs, largest first (then everything else, in plan order):
    workers take runs in list order, so a round does not end waiting on one big straggler."""
    from pretrain.spec import TrainSpec

    def cost(spec) -> float:  # noqa: ANN001
        return run_flops(spec, vocab, study) if vocab and isinstance(spec, TrainSpec) else 0.0

    return sorted(specs, key=cost, reverse=True)


def _materialise(root: Path, spec) -> Path:  # noqa: ANN001
    d = runs_dir(root) / spec.dirname
    run = RunDir(d)
    d.mkdir(parents=True, exist_ok=True)
    run.write_spec(spec.to_json())
    if not (d / "status.json").exists():
        # Only a new run is marked pending: an existing status may belong to a worker of
        # another launcher that has just claimed it (a stale run is resumed as it stands).
        run.update_status(state="pending")
    return d


def _reset_failed(root: Path, log: Callable[[str], None]) -> None:
    snap = Snapshot.read(root)
    failed = [rid for rid, st in snap.states.items() if st == "failed"]
    for rid in failed:
        RunDir(snap.dirs[rid]).update_status(state="pending")
    if failed:
        log(f"--retry-failed: {len(failed)} failed runs set back to pending")


def _progress(label: str, dirs: list[Path], stage_of: dict[str, str], executor: Executor,
              log: Callable[[str], None], every_s: float, study: Study, vocab: int | None,
              prior: Prior | None, finished: list[Path], start_up: float | None) -> LiveProgress:
    """The round's live view (``sweeps.execution.liveview``): its runs, by the stage that
    planned them, worked off by as many workers as the executor gives the round, timed by
    what they and the runs ``finished`` before them measured."""
    workers = executor.workers(len(dirs))
    done: dict = {}
    return LiveProgress(label, lambda: read_runs(dirs, stage_of, done), workers, log, every_s,
                        study=study, vocab=vocab, prior=prior, reference=read_runs(finished),
                        start_up_s=start_up)


def with_executor(study: Study, kind: str | None, parallelism: int | None, profile: str | None) -> Executor:
    ex = study.executor
    if kind:
        ex = replace(ex, kind=kind)
    if parallelism:
        ex = replace(ex, parallelism=parallelism)
    if profile:
        ex = replace(ex, profile=profile)
    return ex

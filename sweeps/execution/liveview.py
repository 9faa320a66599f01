"""The live view of runs at work, for ``dcsl sweep launch``, ``dcsl demo`` and ``dcsl sweep
status --watch``: each running run's step out of its total, its tokens/s and time left, the
runs done / running / pending / failed per stage, and the ETA of them all
(``sweeps.execution.progress``).

On a terminal it is a rich live display, redrawn in place; elsewhere (CI logs, a pipe, the
tests) one plain line per interval, only when something changed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from sweeps.execution.progress import ProgressView, RunEta, estimate, study_cost
from sweeps.execution.runfacts import RunFacts, study_runs

Prior = Callable[[list[str], int], dict[str, float]]
"""(sizes, vocab) -> training FLOP/s per size on this machine: the plan's probe."""
SHOWN_RUNNING = 20
"""Running runs the live view lists (the longest to go first); the rest are counted."""
PLAIN_RUNNING = 4


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    if seconds < 86400 * 2:
        return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
    return f"{seconds / 86400:.1f}d"


def eta_text(view: ProgressView) -> str:
    if view.finished and not view.counts()["pending"]:
        return "done"
    text = f"eta {duration(view.eta_s)}"
    if view.eta_s is not None and view.guessed:
        text += f" ({view.guessed} run{'s' if view.guessed > 1 else ''} of a kind not timed yet as long as the mean one)"
    if view.eta_s is not None and view.unestimated:
        text += f" (+{view.unestimated} run{'s' if view.unestimated > 1 else ''} not estimated)"
    return text


def _short(r: RunEta) -> str:
    return f"{r.facts.size or r.facts.kind}:{r.facts.run_id[:6]}"


def _steps(r: RunEta) -> str:
    total = r.facts.total_steps
    return f"{r.facts.step}/{total}" if total else (f"step {r.facts.step}" if r.facts.step else "-")


def _by_time_left(runs: list[RunEta]) -> list[RunEta]:
    return sorted(runs, key=lambda r: -1.0 if r.remaining_s is None else r.remaining_s, reverse=True)


def plain_line(view: ProgressView, label: str, elapsed_s: float | None = None) -> str:
    """One line: runs finished, running and pending, the ETA, each stage's share done (when
    there are several) and the longest-running runs' steps."""
    c = view.counts()
    n = len(view.runs)
    line = (f"[{label}] {c['done'] + c['failed']}/{n} runs finished ({c['failed']} failed), "
            f"{c['running']} running, {c['pending']} pending"
            + (f", {duration(elapsed_s)} elapsed" if elapsed_s is not None else "") + f", {eta_text(view)}")
    if len(view.stages) > 1:
        parts = []
        for stage in view.stages:
            s = view.counts(stage)
            parts.append(f"{stage or 'other'} {s['done']}/{sum(s.values())}"
                         + (f" ({s['failed']} failed)" if s["failed"] else ""))
        line += "; done per stage: " + ", ".join(parts)
    running = _by_time_left(view.running)
    if running:
        shown = [f"{_short(r)} {_steps(r)}"
                 + (f" {r.facts.tokens_per_s:,.0f} tok/s" if r.facts.tokens_per_s else "")
                 + f" eta {duration(r.remaining_s)}" for r in running[:PLAIN_RUNNING]]
        more = f", +{len(running) - PLAIN_RUNNING} more" if len(running) > PLAIN_RUNNING else ""
        line += "; running: " + ", ".join(shown) + more
    return line


def rich_view(view: ProgressView, label: str, elapsed_s: float | None = None):  # noqa: ANN201
    """The live display: a header line, the running runs with a bar each, the stage totals."""
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    c = view.counts()
    head = Text.assemble((label, "bold"), f"  {c['done']}/{len(view.runs)} done, ",
                         (f"{c['running']} running", "cyan"), f", {c['pending']} pending, ",
                         (f"{c['failed']} failed", "red" if c["failed"] else ""),
                         f"{'  ' + duration(elapsed_s) + ' elapsed' if elapsed_s is not None else ''}  ",
                         (eta_text(view), "bold green"), f"  ({view.parallelism} at once)")
    parts: list = [head]
    running = _by_time_left(view.running)
    if running:
        table = Table(box=None, padding=(0, 1), show_edge=False)
        for name, justify in (("run", "left"), ("stage", "left"), ("", "left"), ("step", "right"),
                              ("tok/s", "right"), ("eta", "right")):
            table.add_column(name, justify=justify, no_wrap=True)
        for r in running[:SHOWN_RUNNING]:
            total = r.facts.total_steps or 0
            bar = ProgressBar(total=total or 1, completed=min(r.facts.step, total), width=24)
            table.add_row(r.facts.name, r.facts.stage, bar, _steps(r),
                          f"{r.facts.tokens_per_s:,.0f}" if r.facts.tokens_per_s else "-",
                          duration(r.remaining_s))
        parts.append(table)
        if len(running) > SHOWN_RUNNING:
            parts.append(Text(f"... and {len(running) - SHOWN_RUNNING} more running"))
    stages = Table(box=None, padding=(0, 1), show_edge=False)
    for name in ("stage", "done", "running", "pending", "failed"):
        stages.add_column(name, justify="left" if name == "stage" else "right")
    for stage in view.stages:
        s = view.counts(stage)
        stages.add_row(stage or "other", *(str(s[k]) for k in ("done", "running", "pending", "failed")))
    if len(view.stages) > 1:
        stages.add_row("all", *(str(c[k]) for k in ("done", "running", "pending", "failed")), style="bold")
    parts.append(stages)
    return Group(*parts)


class LiveProgress:
    """Re-reads the runs on every ``tick`` and shows them: live on a terminal (``live`` None:
    when ``log`` is print and stdout is one), else a plain line every ``every_s``."""

    def __init__(self, label: str, read: Callable[[], list[RunFacts]], parallelism: int,
                 log: Callable[[str], None] = print, every_s: float = 10.0, live: bool | None = None,
                 study=None, vocab: int | None = None, prior: Prior | None = None,  # noqa: ANN001
                 reference: list[RunFacts] = (), start_up_s: float | None = None) -> None:
        self.label, self.read, self.parallelism, self.log, self.every_s = label, read, parallelism, log, every_s
        # Workers (local processes, Slurm jobs) take this long from submission to their first
        # run, as the last round measured: until one starts, the ETA waits that long too.
        self.start_up_s, self.submitted, self.first_start = start_up_s, None, None
        # Runs finished before (earlier rounds): their speeds and start-up count, not their state.
        self.reference = list(reference)
        if live is None:
            from rich.console import Console

            live = log is print and Console().is_terminal
        self.live, self._display = live, None
        self.cost = study_cost(study, vocab) if study is not None else None
        self.vocab, self.prior, self.rates = vocab, prior, None
        self.t0, self.last, self.last_line, self.last_content = time.time(), float("-inf"), "", ""

    def view(self) -> ProgressView:
        runs = self.read()
        measured = any(r.tokens_per_s for r in [*runs, *self.reference])
        if self.prior is not None and self.rates is None and not measured:
            self.rates = self._probe(runs)
        view = estimate(runs, self.parallelism, cost=self.cost, prior=self.rates, reference=self.reference)
        started = [r.started for r in runs if r.started and self.submitted and r.started >= self.submitted]
        if started and self.first_start is None:
            self.first_start = min(started)
        if not started and self.start_up_s and view.eta_s is not None and not view.running:
            waited = time.time() - (self.submitted or time.time())
            view = replace(view, eta_s=view.eta_s + max(0.0, self.start_up_s - waited))
        return view

    def submitting(self) -> None:
        """The workers are being submitted now (their start-up is timed from here)."""
        self.submitted = time.time()

    @property
    def start_up(self) -> float | None:
        """Seconds from submission to this round's first run starting (None: none started)."""
        return None if self.first_start is None or self.submitted is None else self.first_start - self.submitted

    def _probe(self, runs: list[RunFacts]) -> dict[str, float] | None:
        """The prior, once, when nothing has reported yet but runs with steps are to do."""
        sizes = sorted({r.size for r in runs if r.total_steps and r.klass in ("running", "pending")})
        if not sizes or not self.vocab:
            return None
        try:
            return dict(self.prior(sizes, self.vocab))
        except Exception:  # noqa: BLE001 - a display never fails the work it shows
            return {}

    def tick(self, final: bool = False, elapsed: bool = True) -> ProgressView | None:
        now = time.time()
        if not self.live and not final and now - self.last < self.every_s:
            return None
        self.last = now
        view = self.view()
        elapsed_s = now - self.t0 if elapsed else None
        if self.live:
            self._show(rich_view(view, self.label, elapsed_s))
        else:
            # One line an interval (the clock alone changing is a sign of life in a CI log), but
            # the final one only if it says more than the last: not "done" twice.
            line, content = plain_line(view, self.label, elapsed_s), plain_line(view, self.label)
            if line != self.last_line and not (final and content == self.last_content):
                self.log(line)
                self.last_line, self.last_content = line, content
        return view

    def _show(self, renderable) -> None:  # noqa: ANN001
        if self._display is None:
            from rich.live import Live

            self._display = Live(renderable, auto_refresh=False, transient=False)
            self._display.start()
        self._display.update(renderable, refresh=True)

    def close(self) -> None:
        if self._display is not None:
            self._display.stop()
            self._display = None


def watch_study(study, every_s: float = 5.0, prior: Prior | None = None,  # noqa: ANN001 - a Study
                log: Callable[[str], None] = print, live: bool | None = None) -> int:
    """``dcsl sweep status --watch``: the study's planned runs, refreshed every ``every_s``
    until nothing runs or waits for a worker (seen twice in a row: a launcher between rounds
    has nothing running for a moment), or Ctrl-C."""
    from sweeps.runs import read_index

    index = read_index(study.root)
    if index is None:
        log("no runs yet")
        return 0
    parallelism = study.executor.workers(len(index.runs))
    done: dict = {}
    display = LiveProgress(f"study {study.name}", lambda: study_runs(study.root, done), parallelism, log,
                           every_s=0.0, live=live, study=study, vocab=index.pinned.get("vocab"), prior=prior)
    quiet = 0
    try:
        while True:
            view = display.tick(elapsed=False)
            quiet = quiet + 1 if view is not None and view.finished else 0
            if quiet >= 2:
                break
            time.sleep(every_s)
    except KeyboardInterrupt:
        return 0
    finally:
        display.close()
    waiting = sum(r.facts.state in ("stale", "missing", "unreadable") for r in view.runs)
    if waiting:
        log(f"{waiting} planned run{'s' if waiting > 1 else ''} wait for a launcher (stale, damaged or "
            "never started): `dcsl sweep launch` runs them")
    return 0


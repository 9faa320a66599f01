"""Orchestration overhead of the local launcher, per run, before and after amortising start-up.

A study of ~20 tiny runs is launched twice on fresh roots with the same store:

- ``one process per run``: the local executor with ``runs_per_worker = 1`` semantics,
  i.e. every run pays a fresh worker process (imports of torch and Lightning);
- ``amortised``: dcsl's local executor (two workers pulling runs from a shared list).

Overhead per run = (sweep wall time x workers - sum of the runs' own training wall
time) / runs. Target (issue 3): under 1 s per run amortised.

    python bench/bench_sweep.py [--runs 20]
"""

from __future__ import annotations

import argparse
import tempfile
import textwrap
import time
from pathlib import Path

from pretrain.corpus import CorpusSource
from pretrain.rundir import read_json
from pretrain.store import PrepareConfig, prepare_store
from sweeps.execution import RunWorker, executors, launch
from sweeps.study import load_study


def study_text(store: Path, n_lrs: int) -> str:
    lrs = ", ".join(f"{1e-3 * (1 + i):.4e}" for i in range(n_lrs))
    return textwrap.dedent(f"""\
        name: bench
        data: {{store: {store}}}
        budgets: [4k]
        sizes: [tiny-50k]
        training: {{batch_size: 8, seq_len: 32, threads: 1}}
        lattice: {{epochs: [1, 2], lr: [{lrs}], weight_decay: [0.1]}}
        recipes:
          standard: {{weight_decay: 0.1, search: grid}}
        executor: {{kind: local, parallelism: 2}}
        """)


def run_sweep(study_path: Path, root: Path, one_process_per_run: bool) -> tuple[float, float, int]:
    study = load_study(study_path, root=root)
    original = executors.submit
    if one_process_per_run:
        def submit_each(executor, run_dirs, folder):  # noqa: ANN001, ANN202
            import submitit

            ex = submitit.LocalExecutor(folder=str(folder / "%j"))
            ex.update_parameters(timeout_min=600)
            # Each run its own job: a fresh process, as a naive launcher would do. Two at a
            # time, like the amortised executor's two workers.
            jobs = []
            for i in range(0, len(run_dirs), 2):
                pair = [ex.submit(RunWorker([str(d)], threads=1)) for d in run_dirs[i:i + 2]]
                for j in pair:
                    j.result()
                jobs += pair
            return executors.Submission(jobs, [j.job_id for j in jobs])
        executors.submit = submit_each
        import sweeps.execution.launcher as launch_module
        launch_module.submit = submit_each
    try:
        t0 = time.perf_counter()
        report = launch(study, log=lambda _: None)
        wall = time.perf_counter() - t0
    finally:
        executors.submit = original
        import sweeps.execution.launcher as launch_module
        launch_module.submit = original
    own = sum(read_json(d / "result.json")["wall_s"] for d in (root / "runs").iterdir())
    return wall, own, report.launched


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        prepare_store(PrepareConfig(source=CorpusSource(kind="bible"), out=str(tmp / "store"), vocab_size=512,
                                    val_tokens=2_000, max_train_tokens=8_000, tokenizer_docs=200),
                      log=lambda _: None)
        path = tmp / "study.yaml"
        path.write_text(study_text(tmp / "store", args.runs // 2))
        workers = 2
        results = {}
        for label, naive in (("one process per run", True), ("amortised (dcsl local)", False)):
            wall, own, n = run_sweep(path, tmp / label.split()[0], naive)
            overhead = (wall * workers - own) / n
            results[label] = overhead
            print(f"{label:>24}: {n} runs, wall {wall:6.1f}s, runs' own time {own:6.1f}s, "
                  f"overhead {overhead:5.2f}s per run")
        ratio = results["one process per run"] / max(results["amortised (dcsl local)"], 1e-9)
        print(f"amortising start-up cuts the overhead per run {ratio:.1f}x "
              f"(target: amortised < 1 s per run; got {results['amortised (dcsl local)']:.2f}s)")


if __name__ == "__main__":
    main()

"""Train one run in its run directory, resuming from its last checkpoint.

``train_run(spec, run_dir)`` is re-entrant: run it again after a kill and it continues
from the newest complete checkpoint, seeking the data schedule to the saved step, and
ends bit-identical (on CPU) to a run that never stopped. Launchers call this function
in worker processes; ``dcsl train`` calls it from the command line.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.plugins.environments import SLURMEnvironment

from pretrain.data import EpochSchedule, StepDataset
from pretrain.fsdp import full_state, is_sharded, renumber_for_sharding
from pretrain.hfconfig import hf_config
from pretrain.lit import PretrainModule
from pretrain.metrics import METRICS_FILE, MetricsFile, MetricsLog
from pretrain.ranks import is_main_process
from pretrain.rundir import RunDir, atomic_write_json, execute_run
from pretrain.sizes import flops_per_token, param_counts
from pretrain.spec import BASE_CONFIG, TrainSpec
from pretrain.store import TokenStore
from pretrain.strategy import lightning_strategy, precision, strategy_name
from pretrain.tokenizer import sha256_file
from pretrain.trackers import build_loggers, close_loggers

# Lightning's start-up chatter (GPU/TPU lines, tips, srun hints) drowns the progress
# lines of many small runs; keep its warnings and errors only.
logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
logging.getLogger("lightning.fabric").setLevel(logging.WARNING)
for _pattern in (".*srun.*", ".*LeafSpec.*", ".*IterableDataset.*__len__.*"):
    warnings.filterwarnings("ignore", message=_pattern)

_CKPT = re.compile(r"step-(\d+)\.ckpt$")
DEFAULT_CKPT_STEPS = 100
DEFAULT_CKPT_SECONDS = 120.0


def latest_checkpoint(ckpt_dir: Path, log=None, owner: bool = True) -> tuple[Path, int] | None:  # noqa: ANN001
    """The newest readable checkpoint and its step (temp files never match the pattern).

    A checkpoint whose archive fails its checksums (a disk that lost the end of the file, a
    bit flip) is renamed ``*.ckpt.unreadable`` with a one-line warning and the previous one
    is used: two are kept for this. Only the run's ``owner`` (rank 0) renames.
    """
    found = [(int(m.group(1)), p) for p in ckpt_dir.glob("step-*.ckpt") if (m := _CKPT.search(p.name))]
    for step, path in sorted(found, reverse=True):
        problem = _unreadable(path)
        if problem is None:
            return path, step
        if not owner:
            continue
        path.rename(path.with_name(path.name + ".unreadable"))
        if log is not None:
            log(f"warning: checkpoint {path.name} is unreadable ({problem}); falling back to an "
                "earlier one")
    return None


def _unreadable(path: Path) -> str | None:
    """Why a checkpoint cannot be read (torch saves a zip archive with a CRC per record)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        return f"{type(e).__name__}: {e}"
    return f"record {bad} fails its checksum" if bad else None


def drop_training_state(run_dir: Path) -> None:
    """Remove the optimizer checkpoints of a finished run (model.safetensors and result.json
    stay): they are about 3x the weights, 17 GB for a 1.4B run."""
    for path in (Path(run_dir) / "ckpt").glob("step-*.ckpt*"):
        path.unlink(missing_ok=True)


class AtomicCheckpoint(L.Callback):
    """Saves ``ckpt/step-N.ckpt`` atomically every few steps (or seconds) and at the end.

    The step is in the file name, so the data position of a resume never depends on a
    second file that a kill could leave out of date. Every rank takes part in a save (rank 0
    writes), so whether one is due is agreed over the ranks.
    """

    def __init__(self, ckpt_dir: Path, every_steps: int, every_seconds: float, keep: int = 2) -> None:
        self.ckpt_dir, self.every_steps, self.every_seconds, self.keep = ckpt_dir, every_steps, every_seconds, keep
        self._last_save = time.monotonic()

    def save(self, trainer: L.Trainer) -> None:
        step = trainer.global_step
        final = self.ckpt_dir / f"step-{step:08d}.ckpt"
        tmp = self.ckpt_dir / f".step-{step:08d}.ckpt.tmp"
        trainer.save_checkpoint(tmp)  # rank 0 writes it; every rank waits for it to be written
        if trainer.is_global_zero:
            _fsync_rename(tmp, final)
            for old in sorted(self.ckpt_dir.glob("step-*.ckpt"))[: -self.keep]:
                old.unlink(missing_ok=True)
        self._last_save = time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        step = trainer.global_step
        if step >= pl_module.total_steps:
            return  # the final checkpoint is written after the final validation
        due_steps = bool(self.every_steps and step % self.every_steps == 0)
        due_time = time.monotonic() - self._last_save >= self.every_seconds
        if due_steps or trainer.strategy.reduce_boolean_decision(due_time, all=False):
            self.save(trainer)


# Preemption: a job system's signal handler asks for a checkpoint (request_checkpoint) and
# the training loop saves one at the next step boundary, then runs the handler's requeue.
# Saving inside the signal handler itself could catch the optimizer between two tensors.
_checkpoint_then: list[Callable[[], None]] = []
_training = threading.Event()


def request_checkpoint(then: Callable[[], None]) -> None:
    """Checkpoint the running training at its next step, then call ``then`` (requeue and exit);
    with no training running, call ``then`` at once."""
    if _training.is_set():
        _checkpoint_then.append(then)
    else:
        then()


class CheckpointOnRequest(L.Callback):
    """Honours ``request_checkpoint`` at step boundaries (see above)."""

    def __init__(self, checkpoint: AtomicCheckpoint, log) -> None:  # noqa: ANN001
        # (not `self.log`: Lightning resolves that name to LightningModule.log)
        self.checkpoint, self.emit = checkpoint, log

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        # A signal reaches each rank at its own moment: all save at the first step any saw one.
        if not trainer.strategy.reduce_boolean_decision(bool(_checkpoint_then), all=False):
            return
        self.checkpoint.save(trainer)
        self.emit(f"preempted: checkpoint at step {trainer.global_step}/{pl_module.total_steps}")
        waiting = list(_checkpoint_then)
        _checkpoint_then.clear()
        if waiting:  # a rank that saved for another's signal keeps deferring its own
            _training.clear()
        for then in waiting:
            then()


class KeepOuterSigtermHandler(L.Callback):
    """Leave SIGTERM to the job system that started us, when it installed a handler.

    Under submitit, SIGTERM only announces a preemption: submitit ignores it and
    checkpoints and requeues on USR2. Lightning's own SIGTERM handler would instead end
    the run with SIGTERMException at the next step, losing the requeue. Runs started
    without such a handler (a terminal) keep Lightning's behaviour.
    """

    def __init__(self) -> None:
        self.outer = signal.getsignal(signal.SIGTERM)

    def on_train_start(self, trainer, pl_module) -> None:  # noqa: ANN001
        if callable(self.outer) and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.outer)


def _fsync_rename(tmp: Path, final: Path) -> None:
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)


class PeriodicValidation(L.Callback):
    """Full validation at a fixed step interval and at the end (token-weighted mean)."""

    def __init__(self, val_tokens, every: int) -> None:  # noqa: ANN001
        self.val_tokens, self.every = val_tokens, every

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        step = trainer.global_step
        if step == pl_module.total_steps or (self.every and step % self.every == 0):
            pl_module.validate_now(self.val_tokens)


class Progress(L.Callback):
    """Tokens/s, epoch and time left: a live line on a terminal, plain lines in batch jobs."""

    def __init__(self, log, every_seconds: float) -> None:  # noqa: ANN001
        self.emit, self.every_seconds = log, every_seconds
        self.interactive = sys.stderr.isatty()

    def on_train_start(self, trainer, pl_module) -> None:  # noqa: ANN001
        self.t0, self.step0, self.last = time.perf_counter(), trainer.global_step, 0.0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if not trainer.is_global_zero:
            return
        now = time.perf_counter()
        step, total = trainer.global_step, pl_module.total_steps
        if now - self.last < self.every_seconds and step < total:
            return
        self.last = now
        rate = (step - self.step0) / max(now - self.t0, 1e-9)  # wall clock, for the ETA
        eta = (total - step) / rate if rate > 0 else float("inf")
        epoch = min(step // pl_module.steps_per_epoch + 1, pl_module.spec.epochs)
        h = pl_module.history
        # Training steps only, as result.json's tokens_per_s (validation and checkpoints excluded).
        tok_s = h["train_tokens"] / h["train_step_s"] if h["train_step_s"] > 0 else float("nan")
        val = f" val {h['val'][-1]['val_loss']:.4f}" if h["val"] else ""
        line = (f"step {step}/{total} epoch {epoch}/{pl_module.spec.epochs} "
                f"loss {h.get('last_step_loss', float('nan')):.4f}{val} {tok_s:,.0f} tok/s eta {eta:,.0f}s")
        if self.interactive:
            print("\r" + line, end="\n" if step >= total else "", file=sys.stderr, flush=True)
        else:
            self.emit(line)


def train_run(spec: TrainSpec, run_dir: str | Path, log=print, progress_seconds: float = 30.0) -> dict:  # noqa: ANN001
    """Train ``spec`` in ``run_dir`` (resuming if it has a checkpoint); returns result.json.

    A run that already succeeded returns its result without training. A failure is
    recorded in status.json (error line and traceback) and re-raised.
    """
    def work(run: RunDir, inputs: tuple[TokenStore, EpochSchedule]) -> dict:
        return fit_run(spec, run, *inputs, log, progress_seconds)

    # check_spec opens the store and schedule: bad input fails before a directory exists.
    result = execute_run(spec, run_dir, lambda: check_spec(spec), work)
    if not spec.keep_checkpoints and is_main_process():
        drop_training_state(Path(run_dir))
    return result


def check_spec(spec: TrainSpec) -> tuple[TokenStore, EpochSchedule]:
    """Open the spec's store and data schedule; every input error surfaces here."""
    store = TokenStore.expecting(spec.store, spec.store_id)
    if spec.init_from is not None:
        check_base(spec, store)
    schedule = EpochSchedule(store.train_tokens(spec.tokens), spec.seq_len, spec.batch_size,
                             spec.epochs, spec.data_seed)
    return store, schedule


def check_base(spec: TrainSpec, store: TokenStore) -> None:
    """A base must read as a Llama whose vocabulary covers the store's, and when it ships a
    tokenizer, the store must have been tokenized with it (token ids must mean the same)."""
    spec.shape(store.vocab_size)
    tokenizer = Path(spec.init_from) / "tokenizer.json"
    if tokenizer.is_file() and sha256_file(tokenizer) != store.tokenizer_sha256:
        raise ValueError(f"store {store.path} was not tokenized with the tokenizer of base {spec.init_from}: "
                         f"prepare it with --tokenizer {tokenizer}")


def build_trainer(spec: TrainSpec, total_steps: int, root: Path, callbacks: list[L.Callback],
                  strategy: str = "single", loggers: list | None = None) -> L.Trainer:
    """The Lightning Trainer of every dcsl run: we own checkpoints, validation and requeue.
    ``strategy``: pretrain.strategy.strategy_name's answer for the run; ``loggers``: Lightning
    loggers (pretrain.trackers) that pretrain.metrics.MetricsLog hands each metrics row to."""
    # Under Slurm, submitit alone requeues (Lightning's own requeue would fight it).
    plugins = [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []
    return L.Trainer(
        accelerator="auto", devices=spec.devices, num_nodes=spec.nodes, strategy=lightning_strategy(strategy, spec.world_size),
        precision=precision(spec), max_steps=total_steps,
        max_epochs=-1, logger=loggers or False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
        use_distributed_sampler=False,  # each rank takes its rows of the global batch itself
        callbacks=callbacks, plugins=plugins, default_root_dir=str(root),
    )


def fit_run(spec: TrainSpec, run: RunDir, store: TokenStore, schedule: EpochSchedule, log,  # noqa: ANN001
            progress_seconds: float, module: PretrainModule | None = None) -> dict:
    """Fit (or resume) a run in an existing run directory; returns the training result.

    ``schedule`` may be any ``BatchSchedule`` with a ``steps_per_epoch`` (distillation
    students pass a real+synthetic mixture), and ``module`` a ``PretrainModule`` subclass
    (token-level distillation); the defaults are the plain pretraining run.
    """
    if spec.threads:
        torch.set_num_threads(spec.threads)
    if module is None:
        module = PretrainModule(spec, store.vocab_size, schedule.total_steps, schedule.steps_per_epoch)
    owner = is_main_process()
    if owner:
        run.ckpt_dir.mkdir(exist_ok=True)
    else:
        log = _silent  # rank 0 keeps the run's log
    resume = latest_checkpoint(run.ckpt_dir, log, owner)
    strategy = strategy_name(spec, store.vocab_size)
    if resume and strategy == "fsdp" and owner and renumber_for_sharding(resume[0], module):
        log(f"renumbered the optimizer state of {resume[0].name} for sharded training")
    start_step = module.data_start_step = resume[1] if resume else 0
    if resume:
        log(f"resuming {run.path.name} from step {start_step}/{schedule.total_steps}")
    val_every = spec.validation_interval(schedule.total_steps)
    checkpoint = AtomicCheckpoint(run.ckpt_dir, spec.ckpt_every or DEFAULT_CKPT_STEPS,
                                  DEFAULT_CKPT_SECONDS if not spec.ckpt_every else float("inf"))
    metrics, loggers = None, []
    if owner:  # rank 0 alone writes metrics.csv and talks to the trackers
        run.update_status(total_steps=schedule.total_steps)
        loggers = build_loggers(spec, run.path, log)
        metrics = MetricsFile(run.path / METRICS_FILE)
        metrics.open(start_step)  # rows past the checkpoint are trained again: dropped
    # Order matters at a step's end: validation, then its metrics row, then a checkpoint.
    trainer = build_trainer(spec, schedule.total_steps, run.path, [
        PeriodicValidation(store.val_tokens(), val_every), MetricsLog(metrics), checkpoint,
        Progress(log, progress_seconds), KeepOuterSigtermHandler(), CheckpointOnRequest(checkpoint, log)],
        strategy, loggers)
    if owner != trainer.is_global_zero:
        raise RuntimeError(f"this process took itself for rank {'0' if owner else 'other than 0'} from its "
                           f"environment, but Lightning made it rank {trainer.global_rank}")
    shard = (trainer.global_rank, trainer.world_size)
    loader = torch.utils.data.DataLoader(StepDataset(schedule, start_step, shard), batch_size=None, num_workers=0)
    _training.set()
    finished = False
    try:
        # weights_only: a checkpoint is data, never code (a pickle payload must not run).
        trainer.fit(module, train_dataloaders=loader, ckpt_path=str(resume[0]) if resume else None,
                    weights_only=True)
        finished = True
    finally:
        _training.clear()
        if metrics is not None:
            metrics.close()
        close_loggers(loggers, finished)
        waiting = list(_checkpoint_then)  # asked for after the last step: nothing left to save
        _checkpoint_then.clear()
        for then in waiting:
            then()
    if trainer.global_step != schedule.total_steps:
        raise RuntimeError(f"training stopped at step {trainer.global_step} of {schedule.total_steps}")
    checkpoint.save(trainer)  # final state, with the final validation in its history
    state = full_state(module.model) if is_sharded(module.model) else None  # every rank gathers
    if not trainer.is_global_zero:
        return {}
    _save_final_weights(module, run.path, state)
    return _result(spec, module, schedule, store, trainer, strategy)


def _silent(line: str) -> None:
    pass


def _save_final_weights(module: PretrainModule, path: Path, state: dict | None = None) -> None:
    """``state``: the model's full state dict when it trained sharded."""
    from safetensors.torch import save_file

    tmp = path / ".model.safetensors.tmp"
    save_file(module.model.weights(state), str(tmp))
    if module.spec.init_from is not None:  # the shape it trained with, for whoever loads it later
        shape = module.model.shape
        atomic_write_json(path / BASE_CONFIG, hf_config(shape, module.spec.seq_len, eos_id=None))
    _fsync_rename(tmp, path / "model.safetensors")


def _result(spec: TrainSpec, module: PretrainModule, schedule: EpochSchedule, store: TokenStore,
            trainer: L.Trainer, strategy: str) -> dict:
    h = module.history
    shape = module.model.shape
    total, non_embedding = param_counts(shape)
    vals = h["val"]
    best = min(vals, key=lambda v: v["val_loss"])
    # Throughput of the training steps alone (validation and start-up excluded).
    tokens_per_s = h["train_tokens"] / h["train_step_s"] if h["train_step_s"] > 0 else float("nan")
    return {
        "kind": "train",
        "final_val_loss": vals[-1]["val_loss"],
        "best_val_loss": best["val_loss"],
        "best_step": best["step"],
        "train_loss": h["last_epoch_train_loss"],
        "val_history": vals,
        "steps": schedule.total_steps,
        "steps_per_epoch": schedule.steps_per_epoch,
        "tokens_seen": schedule.total_steps * schedule.tokens_per_step,
        "budget_tokens": spec.tokens,
        "n_params": total,
        "n_params_non_embedding": non_embedding,
        "vocab_size": store.vocab_size,
        "flops": flops_per_token(shape, spec.seq_len) * schedule.total_steps * schedule.tokens_per_step,
        "wall_s": module.elapsed_s(),
        "tokens_per_s": tokens_per_s,
        "device": str(module.device),
        "world_size": trainer.world_size,
        "strategy": strategy,
        "compiled": module.compiled,
        "precision": precision(spec),
    }

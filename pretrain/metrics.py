"""A run's metrics over training: ``<run dir>/metrics.csv``, always written, cheap to write.

One row every ``TrainSpec.metrics_every`` optimizer steps and at the last step, with exactly
these columns in this order (``COLUMNS``)::

    step,tokens,epoch,lr,train_loss,val_loss,tokens_per_s,grad_norm

- step: optimizer steps done; tokens: tokens trained on so far (step x batch x seq_len);
- epoch: fractional epoch, step / steps per epoch;
- lr: the learning rate the step used (before the scheduler moved it on);
- train_loss: mean training loss over the steps since the previous row;
- val_loss: the validation loss when the run validated at that step, else empty;
- tokens_per_s: throughput since the previous row, over training steps alone (as result.json's
  tokens_per_s: validation and checkpoints excluded);
- grad_norm: the global gradient norm before clipping, at that step.

Integers are written as integers, floats as Python's shortest round-trip form (``repr``), so
``float(field)`` reads back exactly the value the trackers got. Each row is one ``os.write`` of
the whole line on an ``O_APPEND`` descriptor: a reader (or a kill) never sees half a row. A
resumed run first drops the rows past its checkpoint's step, then appends: the file's steps
are those of a run that never stopped. Only global rank 0 writes. Experiment trackers
(pretrain.trackers) get the same row, without its empty fields, at the same step.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import lightning as L

from pretrain.rundir import atomic_write_bytes

METRICS_FILE = "metrics.csv"
COLUMNS = ("step", "tokens", "epoch", "lr", "train_loss", "val_loss", "tokens_per_s", "grad_norm")
HEADER = (",".join(COLUMNS) + "\n").encode()


def row_due(step: int, every: int, total_steps: int) -> bool:
    """Whether the step that brings the run to ``step`` steps done writes a row."""
    return step == total_steps or step % every == 0


def format_row(row: dict[str, Any]) -> bytes:
    """One CSV line of ``row`` (every column; None is an empty field)."""
    def text(value: Any) -> str:
        if value is None:
            return ""
        return str(value) if isinstance(value, int) else repr(float(value))

    return (",".join(text(row[c]) for c in COLUMNS) + "\n").encode()


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The complete rows of a metrics.csv (ints, floats, None for an empty field)."""
    lines = Path(path).read_bytes().split(b"\n")
    if not lines or lines[0] + b"\n" != HEADER:
        raise ValueError(f"{path}: not a metrics file (its first line is not {HEADER.decode().strip()})")
    rows = []
    for line in lines[1:-1]:  # the last piece follows the last newline: empty when complete
        fields = line.decode().split(",")
        rows.append({c: (None if f == "" else int(f) if c in ("step", "tokens") else float(f))
                     for c, f in zip(COLUMNS, fields, strict=True)})
    return rows


class MetricsFile:
    """Appends rows to a run's metrics.csv (see the module's docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.fd: int | None = None

    def open(self, resume_step: int) -> None:
        """Keep the rows up to ``resume_step`` (the checkpoint training resumes from; 0 for a
        fresh start keeps none) and open the file for appending."""
        keep_through(self.path, resume_step)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, row: dict[str, Any]) -> None:
        assert self.fd is not None, "open the metrics file first"
        line = format_row(row)
        written = os.write(self.fd, line)  # one write: the whole row or, on a full disk, an error
        if written != len(line):
            raise OSError(f"{self.path}: wrote {written} of the {len(line)} bytes of a row (disk full?)")

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def keep_through(path: Path, step: int) -> None:
    """Drop every row past ``step`` (and a torn last line) in place; a missing file, or one
    of another format, starts again as the header alone."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = b""
    if not data.startswith(HEADER):
        atomic_write_bytes(path, HEADER)
        return
    end = len(HEADER)
    for line in data[end:].splitlines(keepends=True):
        try:
            past = not line.endswith(b"\n") or int(line.split(b",", 1)[0]) > step
        except ValueError:
            past = True
        if past:
            break
        end += len(line)
    if end < len(data):
        os.truncate(path, end)


def take_row(module: L.LightningModule, step: int) -> dict[str, Any]:
    """The row at ``step`` from what the module measured (``PretrainModule.step_metrics`` and the
    history's ``metrics`` accumulators), starting the next row's accumulation. Every rank takes
    it, so the accumulators (saved in checkpoints) stay the same on all of them."""
    h = module.history
    acc = h["metrics"]
    spec = module.spec
    val = h["val"][-1]["val_loss"] if h["val"] and h["val"][-1]["step"] == step else None
    seconds = h["train_step_s"] - acc["step_s"]
    tokens = h["train_tokens"] - acc["tokens"]
    row = {
        "step": step,
        "tokens": step * spec.batch_size * spec.seq_len,
        "epoch": step / module.steps_per_epoch,
        "lr": module.step_metrics["lr"],
        "train_loss": acc["loss_sum"] / acc["steps"] if acc["steps"] else math.nan,
        "val_loss": val,
        "tokens_per_s": tokens / seconds if seconds > 0 else math.nan,
        "grad_norm": module.step_metrics["grad_norm"],
    }
    h["metrics"] = next_row(h)
    return row


def next_row(history: dict) -> dict[str, Any]:
    """The accumulators of the next row, kept in the run's history (saved in checkpoints): the
    training loss summed over its steps so far, and the training tokens and training-step time
    at the previous row."""
    return {"loss_sum": 0.0, "steps": 0, "tokens": history.get("train_tokens", 0),
            "step_s": history.get("train_step_s", 0.0)}


def tracked(row: dict[str, Any]) -> dict[str, float]:
    """What a tracker logs of a row at ``row["step"]``: every other column that has a value."""
    return {k: v for k, v in row.items() if k != "step" and v is not None}


class MetricsLog(L.Callback):
    """Writes the metrics rows (rank 0: ``file``; other ranks pass None) and hands each to the
    trainer's loggers. Runs after the validation callback, so a row sees its step's validation,
    and before the checkpoint callback, so a checkpoint holds the accumulators as they are
    after its step's row."""

    def __init__(self, file: MetricsFile | None) -> None:
        self.file = file

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        step = trainer.global_step
        if not pl_module.metrics_due(step):
            return
        row = take_row(pl_module, step)
        if self.file is not None:
            self.file.append(row)
        for logger in trainer.loggers:
            logger.log_metrics(tracked(row), step=step)
            logger.save()

"""Distillation students as a run kind: a training run with a teacher.

Two modes, both reported the same way:

- ``sequence`` (the paper's): train on the real budget mixed with a teacher's synthetic
  store at weight w (``distill.mixture``); the real data is still seen ``epochs`` times.
- ``token``: train on the real budget only, against the teacher's per-token
  distribution at ``kd_temperature``: loss = (1 - kd_weight) CE + kd_weight T^2 KL(teacher || student).

Reporting: the student's validation loss, the teacher's and the single-model baseline's,
and the retained share (single - student) / (single - teacher). The teacher and single
losses are *computed by the student run*, after training, with one streaming ensemble
pass over the same validation set at the student's seq_len: teacher = the teacher
ensemble under its rule, single = teacher member 0 alone (one model at the teacher's
size and recipe). So all three numbers share data, length and code; for
self-distillation teacher = single and the retained share is undefined (None).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.mixture import MixtureSchedule
from distill.spec import DistillSpec
from eval.ensemble import (
    check_members,
    chunk_sequences_for,
    ensemble_losses,
    open_members,
)
from pretrain.data import EpochSchedule
from pretrain.load import TrainedRun, resolve_device
from pretrain.rundir import RunDir, execute_run
from pretrain.store import TokenStore


@dataclass
class _Inputs:
    store: TokenStore
    teachers: list[TrainedRun]
    schedule: MixtureSchedule | EpochSchedule


def _prepare(spec: DistillSpec) -> _Inputs:
    store = TokenStore.expecting(spec.store, spec.store_id)
    teachers = open_members(spec.teacher_dirs, spec.teacher_ids, what="teacher")
    check_members(teachers, store, what="teacher")
    real = store.train_tokens(spec.tokens)
    if spec.mode == "token":
        schedule = EpochSchedule(real, spec.seq_len, spec.batch_size, spec.epochs, spec.data_seed)
        return _Inputs(store, teachers, schedule)
    synthetic = None
    if spec.synthetic_weight > 0:
        syn = TokenStore.expecting(spec.synthetic_store, spec.synthetic_store_id, what="synthetic store")
        store.check_tokenizer(syn.tokenizer_sha256, f"synthetic store {syn.path}")
        recorded = syn.manifest.get("teacher", {}).get("run_ids")
        if recorded is not None and list(recorded) != list(spec.teacher_ids):
            raise ValueError(f"synthetic store {syn.path} was sampled by teachers {recorded}, but the spec "
                             f"names {list(spec.teacher_ids)}")
        synthetic = syn.train_tokens()
    schedule = MixtureSchedule(real, synthetic, spec.seq_len, spec.batch_size, spec.epochs,
                               spec.synthetic_weight, spec.data_seed)
    return _Inputs(store, teachers, schedule)


def retained_share(single: float, student: float, teacher: float) -> float | None:
    """(single - student) / (single - teacher); None when the teacher is no better."""
    gain = single - teacher
    return (single - student) / gain if gain > 0 else None


def run_distill(spec: DistillSpec, run_dir: str | Path, log: Callable[[str], Any] = print,
                progress_seconds: float = 30.0) -> dict:
    """Train the student in ``run_dir`` (resuming), then score its teacher; returns result.json."""

    def work(run: RunDir, inputs: _Inputs) -> dict:
        from distill.kd import KDModule  # Lightning is imported here, not with table_rows
        from pretrain.train import fit_run

        schedule, store = inputs.schedule, inputs.store
        module = None
        if spec.mode == "token":
            teachers = [t.load_model("cpu", spec.seq_len) for t in inputs.teachers]
            module = KDModule(spec, store.vocab_size, schedule.total_steps, schedule.steps_per_epoch, teachers)
        result = fit_run(spec, run, store, schedule, log, progress_seconds, module=module)
        del module
        if not result:  # another rank of a multi-process student: rank 0 scores the teacher
            return result
        device = resolve_device("auto")
        ev = ensemble_losses(inputs.teachers, store.val_tokens(), spec.seq_len, (spec.rule,),
                             batch_size=spec.micro_batch_size or spec.batch_size,
                             chunk_sequences=chunk_sequences_for(512, spec.seq_len, store.vocab_size, 1),
                             device=device, autocast=device.type == "cuda")
        # Both from the rule's nested losses: at K = 1 they are the same number, exactly.
        teacher_loss, single_loss = ev.losses(spec.rule)[-1], ev.losses(spec.rule)[0]
        share = retained_share(single_loss, result["final_val_loss"], teacher_loss)
        log(f"{run.path.name}: student {result['final_val_loss']:.4f}, teacher {teacher_loss:.4f}, "
            f"single {single_loss:.4f}, retained share "
            f"{'undefined' if share is None else f'{share:.3f}'}")
        mixture = isinstance(schedule, MixtureSchedule)
        result.update({
            "kind": "distill", "mode": spec.mode, "teacher_ids": list(spec.teacher_ids),
            "K": len(spec.teacher_ids), "rule": spec.rule, "teacher_loss": teacher_loss,
            "single_loss": single_loss, "retained_share": share,
            "synthetic_weight": spec.synthetic_weight,
            "real_steps": schedule.real_steps if mixture else schedule.total_steps,
            "real_rows": schedule.real_rows if mixture else schedule.total_steps * spec.batch_size,
            "synthetic_rows": schedule.synthetic_rows if mixture else 0,
            "synthetic_epochs": schedule.synthetic_epochs if mixture else 0.0,
            "kd_temperature": spec.kd_temperature if spec.mode == "token" else None,
            "kd_weight": spec.kd_weight if spec.mode == "token" else None,
        })
        return result

    result = execute_run(spec, run_dir, lambda: _prepare(spec), work)
    if not spec.keep_checkpoints and result:
        from pretrain.train import drop_training_state

        drop_training_state(Path(run_dir))
    return result

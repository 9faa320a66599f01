"""The LightningModule of one pretraining run: optimiser, schedule, step, validation.

Optimisation is manual (``automatic_optimization = False``): each training step gets
one *global* batch and splits it into micro-batches itself. That keeps the global
batch independent of memory and sidesteps Lightning's accumulation pitfall (silently
no accumulation when an epoch is shorter than the accumulation window), because our
data epochs are not Lightning epochs at all.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext

import lightning as L
import numpy as np
import torch

from pretrain.data import validation_batches
from pretrain.fsdp import OPTIMIZER_IDS, is_sharded, shard_model
from pretrain.loss import summed_cross_entropy
from pretrain.metrics import next_row, row_due
from pretrain.model import Llama, init_model
from pretrain.ranks import all_sum
from pretrain.spec import TrainSpec

ADAM_BETAS = (0.9, 0.95)
ADAM_EPS = 1e-8
GRAD_CLIP = 1.0


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss; the run stops as failed, and its status.json
    says it diverged (a tuning search counts such a point as trained and not better)."""

    diverged = True


def warmup_cosine(step: int, total_steps: int, warmup_steps: int) -> float:
    """Learning-rate multiplier: linear warmup, then cosine decay to 0 at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def sequence_loss(model: torch.nn.Module, rows: torch.Tensor,
                  features: Callable[[torch.Tensor], torch.Tensor] | None = None) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy of rows (B, T+1) and the number of scored tokens;
    ``features`` is the model's feature function when it is compiled (pretrain.loss)."""
    inputs, targets = rows[:, :-1], rows[:, 1:]
    return summed_cross_entropy(model, inputs, targets, features), targets.numel()


@torch.no_grad()
def validation_loss(
    model: torch.nn.Module, tokens: np.ndarray, seq_len: int, batch_size: int, device: torch.device,
    shard: tuple[int, int] = (0, 1),
) -> float:
    """Token-weighted mean loss over the whole validation set. With ``shard=(rank, world)``
    each rank scores every world-th batch and the sums meet over the process group."""
    was_training = model.training
    model.eval()
    rank, world = shard
    batches = list(validation_batches(tokens, seq_len, batch_size))
    mine = batches[rank::world]
    # A sharded model gathers its weights in every forward, a collective: each rank runs as
    # many as the busiest one, scoring a spare batch it then leaves out.
    spare = -(-len(batches) // world) - len(mine) if is_sharded(model) else 0
    total, count = 0.0, 0
    for i, rows in enumerate(mine + batches[:spare]):
        loss, n = sequence_loss(model, torch.from_numpy(rows).to(device))
        if i < len(mine):
            total += loss.item()
            count += n
    model.train(was_training)
    if world > 1:
        total, count = all_sum([total, float(count)], device)
    return total / count


def initial_model(spec: TrainSpec, vocab_size: int) -> Llama:
    """A fresh init from the spec's seed, or the base it continues from (checked against the
    content id the spec was made with)."""
    if spec.init_from is None:
        return init_model(spec.shape(vocab_size), spec.seq_len, spec.init_seed)  # a custom size's too
    from pretrain.hf import load_hf_llama
    from pretrain.hfconfig import base_id

    found = base_id(spec.init_from)
    if found != spec.init_id:
        raise ValueError(f"base {spec.init_from} has content id {found}, but the run was made from "
                         f"{spec.init_id}: the base changed")
    spec.shape(vocab_size)  # the store's tokenizer must fit the base's vocabulary
    return load_hf_llama(spec.init_from, max_seq_len=spec.seq_len).train()


class PretrainModule(L.LightningModule):
    def __init__(self, spec: TrainSpec, vocab_size: int, total_steps: int, steps_per_epoch: int) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.spec, self.total_steps, self.steps_per_epoch = spec, total_steps, steps_per_epoch
        self.model: Llama = initial_model(spec, vocab_size)
        self.model.checkpoint_activations = spec.activation_checkpointing
        self.micro = spec.micro_batch_size or spec.local_batch_size
        self.warmup_steps = max(1, math.ceil(spec.warmup_frac * total_steps)) if spec.warmup_frac else 0
        self._forward = self.model
        self._features = None  # the model's own, unless compiled (setup)
        # Run history that must survive a resume lives in this dict (saved in checkpoints).
        self.history: dict = {"val": [], "epoch_loss_sum": 0.0, "epoch_steps": 0,
                              "last_epoch_train_loss": None, "elapsed_s": 0.0,
                              "train_step_s": 0.0, "train_tokens": 0, "metrics": next_row({})}
        self.step_metrics: dict = {}
        """The lr and gradient norm of the last step that writes a metrics row (pretrain.metrics)."""
        self._attempt_start, self._earlier_s = time.perf_counter(), 0.0
        self.compiled = False
        self.data_start_step = 0
        """The step this rank's data starts at: its own resume checkpoint's (pretrain.train)."""

    def setup(self, stage: str) -> None:
        compile_on = self.spec.compile
        if compile_on is None:
            compile_on = self.trainer.strategy.root_device.type == "cuda"
        self.compiled = compile_on
        if compile_on and not self.sharded:  # a sharded model compiles its blocks (configure_model)
            # Compiled forward only; self.model stays plain so checkpoints load anywhere.
            object.__setattr__(self, "_forward", torch.compile(self.model))
            # The sliced loss of large vocabularies calls the features alone: compiled too.
            object.__setattr__(self, "_features", torch.compile(self.model.features))

    @property
    def sharded(self) -> bool:
        """Whether this run trains under FSDP (Lightning's ModelParallelStrategy)."""
        from lightning.pytorch.strategies import ModelParallelStrategy

        return isinstance(self.trainer.strategy, ModelParallelStrategy)

    def configure_model(self) -> None:
        if self.sharded and not is_sharded(self.model):
            shard_model(self.model, self.device_mesh["data_parallel"], compile_blocks=self.compiled)

    def configure_optimizers(self):  # noqa: ANN201
        opt = torch.optim.AdamW(
            self.model.decay_groups(self.spec.weight_decay), lr=self.spec.lr, betas=ADAM_BETAS, eps=ADAM_EPS
        )
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: warmup_cosine(s, self.total_steps, self.warmup_steps)
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        started = time.perf_counter()
        opt = self.optimizers()
        sched = self.lr_schedulers()
        # ``batch`` is this rank's share of the global batch (all of it on one device).
        n_tokens = batch.shape[0] * (batch.shape[1] - 1)
        total = torch.zeros((), device=batch.device)
        micro_batches = batch.split(self.micro)
        for i, rows in enumerate(micro_batches):
            # Under DDP gradients meet over ranks once per step, in the last micro-batch's
            # backward; FSDP reduce-scatters each one into the rank's shard as it goes.
            last = i == len(micro_batches) - 1
            with nullcontext() if last else self._no_gradient_sync():
                loss_sum, _ = self.step_loss(rows)
                # Scale by this rank's token count: DDP and FSDP average over the equal shares
                # of the ranks, so the accumulated gradient is that of the whole global batch.
                self.manual_backward(loss_sum / n_tokens)
            total += loss_sum.detach()
        world = self.trainer.world_size
        loss_value = all_sum([total.item()], self.device)[0] / (n_tokens * world)
        loss = torch.tensor(loss_value)
        if not math.isfinite(loss_value):
            raise NonFiniteLossError(f"diverged at step {self.global_step} (loss {loss_value}): "
                                     f"lower the lr (now {self.spec.lr:g})")
        if self.metrics_due(self.global_step + 1):  # this step writes a metrics row
            self.step_metrics = {"lr": opt.optimizer.param_groups[0]["lr"], "grad_norm": self._grad_norm(opt)}
        self.clip_gradients(opt, gradient_clip_val=GRAD_CLIP, gradient_clip_algorithm="norm")
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
        self._track_epoch_loss(loss_value)
        row = self.history["metrics"]
        row["loss_sum"] += loss_value
        row["steps"] += 1
        self.history["train_step_s"] += time.perf_counter() - started
        self.history["train_tokens"] += n_tokens * world
        return loss

    def metrics_due(self, step: int) -> bool:
        """Whether reaching ``step`` steps done writes a row of metrics.csv: every metrics_every
        steps, the last step, and every step the run validates at (so no validation is lost
        to a row that falls between them)."""
        return (row_due(step, self.spec.metrics_every, self.total_steps)
                or step % self.spec.validation_interval(self.total_steps) == 0)

    def _grad_norm(self, opt) -> float:  # noqa: ANN001 - Lightning's optimizer wrapper
        """The global gradient norm before clipping: the norm clip_gradients computes (the same
        function over the same parameters, so the same number), asked for only on the steps that
        write a metrics row, where its .item() is the one sync it adds."""
        grads = [p.grad for p in self.trainer.precision_plugin.main_params(opt.optimizer) if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads)
        if hasattr(norm, "full_tensor"):  # FSDP's DTensor: the norm over every rank's shards
            norm = norm.full_tensor()
        return norm.item()

    def _no_gradient_sync(self):  # noqa: ANN202
        """Keep gradients on this rank (accumulating) instead of reducing them after a backward.
        DDP only: ModelParallelStrategy has no such switch, and FSDP is for memory, which
        holding a whole model's gradients would spend."""
        block = getattr(self.trainer.strategy, "block_backward_sync", None)
        return block() if block is not None and self.trainer.world_size > 1 else nullcontext()

    def step_loss(self, rows: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Summed training loss of a micro-batch and its token count.

        A hook: token-level distillation (distill/student.py) overrides it with a KL term.
        """
        return sequence_loss(self._forward, rows, self._features)

    def _track_epoch_loss(self, loss: float) -> None:
        h = self.history
        h["epoch_loss_sum"] += loss
        h["epoch_steps"] += 1
        h["last_step_loss"] = loss
        if h["epoch_steps"] == self.steps_per_epoch:
            h["last_epoch_train_loss"] = h["epoch_loss_sum"] / h["epoch_steps"]
            h["epoch_loss_sum"], h["epoch_steps"] = 0.0, 0

    def validate_now(self, val_tokens: np.ndarray) -> float:
        with self.trainer.precision_plugin.forward_context():
            # Each rank scores every world-th batch (a whole replica each, under DDP).
            loss = validation_loss(self.model, val_tokens, self.spec.seq_len, self.micro, self.device,
                                   (self.trainer.global_rank, self.trainer.world_size))
        step = int(self.global_step)
        self.history["val"].append({"step": step, "tokens": step * self.spec.batch_size * self.spec.seq_len,
                                    "val_loss": loss})
        return loss

    def on_train_start(self) -> None:
        self._attempt_start = time.perf_counter()
        if self.trainer.world_size > 1:
            # Each rank chose its checkpoint, and so where its data starts, itself: a shared
            # filesystem's caches could show them different newest files, and they would then
            # train out of step. (FSDP loads rank 0's file everywhere, so the data start is
            # what may differ; DDP loads each rank's own.)
            mine = torch.tensor([self.global_step, self.data_start_step], device=self.device)
            steps = self.all_gather(mine).flatten().tolist()
            if len(set(steps)) > 1:
                raise RuntimeError(f"the ranks resumed from different checkpoints (steps {sorted(set(steps))}); "
                                   "start the run again")

    def elapsed_s(self) -> float:
        """Training wall time over all attempts so far (a killed attempt counts to its last save)."""
        return self._earlier_s + time.perf_counter() - self._attempt_start

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        self.history["elapsed_s"] = self.elapsed_s()
        checkpoint["dcsl_history"] = self.history
        checkpoint["dcsl_spec"] = self.spec.to_json()
        checkpoint[OPTIMIZER_IDS] = "model" if self.sharded else "optimizer"  # pretrain.fsdp

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # A checkpoint taken after the last step resumes straight to the end, without
        # on_train_start: the earlier attempts' time must already be known here.
        self.history = checkpoint["dcsl_history"]
        self._earlier_s = self.history["elapsed_s"]
        # A checkpoint from before metrics.csv: its next row covers the steps from here on.
        self.history.setdefault("metrics", next_row(self.history))

"""Token-level distillation: the training loss of a student against a frozen teacher.

loss = (1 - kd_weight) CE(student, data) + kd_weight T^2 KL(teacher_T || student_T),
summed over tokens like ``sequence_loss``; the teacher is an ensemble combined by the
spec's rule, then tempered: softmax(log p_teacher / T). The T^2 factor keeps gradient
sizes comparable across temperatures (Hinton et al., 2015).

Large vocabularies: when a micro-batch's logits would pass ``pretrain.loss.CHUNK_LOGITS``,
the student's head, the teachers' heads and the loss run one slice of tokens at a time
(``pretrain.loss.sliced_linear_loss``), so neither model's full logits ever exist.

Kept apart from ``distill.student`` so that importing a student's ``table_rows`` (the
sweep collector does) never pays for importing Lightning.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from distill.spec import DistillSpec
from eval.combine import MemberAccumulator
from pretrain.lit import PretrainModule
from pretrain.loss import SliceLoss, cross_entropy_slices, slice_tokens, sliced, sliced_linear_loss
from pretrain.model import Llama


class KDModule(PretrainModule):
    """A pretraining module whose loss is distillation to a frozen teacher ensemble."""

    def __init__(self, spec: DistillSpec, vocab_size: int, total_steps: int, steps_per_epoch: int,
                 teachers: list[Llama]) -> None:
        super().__init__(spec, vocab_size, total_steps, steps_per_epoch)
        # A plain list: teachers stay out of the state dict, the optimiser and checkpoints.
        self.teachers = list(teachers)

    def on_fit_start(self) -> None:
        for teacher in self.teachers:
            teacher.to(self.device).eval().requires_grad_(False)

    def step_loss(self, rows: torch.Tensor) -> tuple[torch.Tensor, int]:
        spec: DistillSpec = self.spec  # type: ignore[assignment]
        inputs, targets = rows[:, :-1], rows[:, 1:]
        n, vocab = targets.numel(), self.model.shape.vocab_size
        if sliced(n, vocab):
            with torch.no_grad():
                teachers = [(t.features(inputs).reshape(n, -1), t.head.weight) for t in self.teachers]
            kd = distillation_slices(teachers, targets.reshape(-1), spec.rule, spec.kd_temperature, spec.kd_weight)
            tokens = slice_tokens(vocab)
            return self.model.head_loss(inputs, lambda h, weight: sliced_linear_loss(h, weight, kd, tokens),
                                        self._features), n
        logits = self._forward(inputs).float()
        t = spec.kd_temperature
        with torch.no_grad():
            acc = MemberAccumulator((spec.rule,))
            for teacher in self.teachers:
                acc.add(teacher(inputs))
            teacher_logp = torch.log_softmax(acc.log_probs(spec.rule) / t, dim=-1)
        student_logp = torch.log_softmax(logits / t, dim=-1)
        kl = (teacher_logp.exp() * (teacher_logp - student_logp)).sum()
        loss = spec.kd_weight * t * t * kl
        if spec.kd_weight < 1:
            ce = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum")
            loss = loss + (1 - spec.kd_weight) * ce
        return loss, targets.numel()


def distillation_slices(teachers: list[tuple[torch.Tensor, torch.Tensor]], targets: torch.Tensor, rule: str,
                        temperature: float, kd_weight: float) -> SliceLoss:
    """The loss above, slice by slice, from the teachers' (features, head weight): with
    q = softmax(z / T) of the student and p the tempered teacher, d(T^2 KL(p || q)) / dz = T (q - p)."""
    ce = cross_entropy_slices(targets)

    def loss(logits: torch.Tensor, tokens: slice) -> tuple[torch.Tensor, torch.Tensor]:
        t = temperature
        with torch.no_grad():
            acc = MemberAccumulator((rule,))
            for h, head in teachers:
                acc.add(F.linear(h[tokens], head.to(h.dtype)))
            teacher_logp = torch.log_softmax(acc.log_probs(rule) / t, dim=-1)
        student_logp = torch.log_softmax(logits / t, dim=-1)
        p = teacher_logp.exp()
        total = kd_weight * t * t * (p * (teacher_logp - student_logp)).sum()
        grad = (kd_weight * t) * (student_logp.exp_() - p)
        if kd_weight < 1:
            ce_total, ce_grad = ce(logits, tokens)  # overwrites the logits: last
            total, grad = total + (1 - kd_weight) * ce_total, grad.add_(ce_grad, alpha=1 - kd_weight)
        return total, grad
    return loss

"""Token-level distillation: the training loss of a student against a frozen teacher.

loss = (1 - kd_weight) CE(student, data) + kd_weight T^2 KL(teacher_T || student_T),
summed over tokens like ``sequence_loss``; the teacher is an ensemble combined by the
spec's rule, then tempered: softmax(log p_teacher / T). The T^2 factor keeps gradient
sizes comparable across temperatures (Hinton et al., 2015).

Kept apart from ``distill.student`` so that importing a student's ``table_rows`` (the
sweep collector does) never pays for importing Lightning.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from distill.spec import DistillSpec
from eval.combine import MemberAccumulator
from pretrain.lit import PretrainModule
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

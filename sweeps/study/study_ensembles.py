"""A study's ensembles and distillation sections: their typed objects and parsers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eval.rules import LOSS_RULES, RULES
from sweeps.study.yamlpos import Section


@dataclass(frozen=True)
class Ensembles:
    """K seeds at a tuned point shifted by the member rule (double epochs, halve decay)."""

    from_recipe: str
    members: int
    epochs_factor: float = 2.0
    weight_decay_factor: float = 0.5
    rules: tuple[str, ...] = RULES
    """Validation-loss rules: logit-mean, prob-mean, uniform-soup (the weight average)."""
    budgets: tuple[int, ...] = ()
    sizes: tuple[str, ...] = ()

    def member_point(self, tuned: dict[str, Any]) -> dict[str, Any]:
        """The member rule applied to a tuned point: epochs and weight decay scaled, lr kept."""
        return {"epochs": max(1, round(tuned["epochs"] * self.epochs_factor)), "lr": tuned["lr"],
                "weight_decay": tuned["weight_decay"] * self.weight_decay_factor}


@dataclass(frozen=True)
class Distill:
    """A student trained on real data mixed with a teacher's samples (or token-level KD)."""

    name: str
    teacher: str
    """'ensemble' (the K-member ensemble of teacher_size) or 'single' (self-distillation)."""
    teacher_size: str
    student_size: str
    budget: int
    members: int = 1
    method: str = "sequence"
    synthetic_weight: float = 0.75
    synthetic_tokens: int = 0
    temperature: float = 1.0

    @property
    def n_teachers(self) -> int:
        """Models in the teacher: the ensemble's members, or one (self-distillation)."""
        return self.members if self.teacher == "ensemble" else 1

    def synthetic_tokens_for(self, epochs: int) -> int:
        """Tokens the teacher samples: ``synthetic_tokens``, else enough that the student sees
        each once beside its real data (real x epochs x w / (1 - w))."""
        w = self.synthetic_weight
        return self.synthetic_tokens or int(self.budget * epochs * w / (1 - w))



def subset(sec: Section, key: str, parse, universe: tuple) -> tuple:  # noqa: ANN001
    """The values of list ``key``, each refused unless it is among ``universe``, and refused when
    listed twice or empty (absent, the key means all of ``universe``)."""
    values = tuple(parse(v, p) for v, p in sec.items(key))
    for v, (_, p) in zip(values, sec.items(key), strict=True):
        if v not in universe:
            raise sec.pos.error(p, f"{v!r} is not among the study's {key} {list(universe)}")
    return sec.unique(key, values, f"leave the key out to use all the study's {key}")


def _ensembles(sec: Section, recipes: dict, budgets: tuple, sizes: tuple) -> Ensembles:
    source = sec.raw("from")
    if source is None:
        raise sec.pos.error(sec.path + ("from",), f"is required: the recipe whose tuned points the members "
                            f"start from ({', '.join(recipes)})")
    if not isinstance(source, str) or source not in recipes:
        raise sec.pos.error(sec.path + ("from",), f"{source!r} is not a recipe of this study ({', '.join(recipes)})")
    rule = sec.sub("member_rule")
    ens = Ensembles(
        from_recipe=source,
        members=sec.number("members", int),
        epochs_factor=rule.number("epochs", float, default=2.0),
        weight_decay_factor=rule.number("weight_decay", float, default=0.5, allow_zero=True),
        rules=sec.unique("rules", [_rule(sec, v, p) for v, p in sec.items("rules")],
                         f"leave the key out for all the rules ({', '.join(RULES)})") or RULES,
        budgets=subset(sec, "budgets", lambda v, p: sec.tokens("budgets", v, p), budgets),
        sizes=subset(sec, "sizes", lambda v, p: sec.size(v, p, sizes), sizes),
    )
    rule.done()
    sec.done()
    return ens


def _rule(sec: Section, value: Any, path: tuple) -> str:
    if value not in LOSS_RULES:
        raise sec.pos.error(path, f"unknown ensemble rule {value!r}; use {', '.join(LOSS_RULES)}")
    return value


def _distill(sec: Section, budgets: tuple, custom: tuple[str, ...] = ()) -> Distill:
    budget = sec.tokens("budget", sec.raw("budget", budgets[0]), sec.path + ("budget",))
    if budget not in budgets:
        raise sec.pos.error(sec.path + ("budget",), f"{budget} is not among the study's budgets {list(budgets)}")
    teacher = sec.choice("teacher", ("ensemble", "single"), "ensemble")
    d = Distill(
        name=str(sec.raw("name") or f"distill-{teacher}"),
        teacher=teacher,
        teacher_size=sec.size(sec.raw("teacher_size"), sec.path + ("teacher_size",), custom),
        student_size=sec.size(sec.raw("student_size"), sec.path + ("student_size",), custom),
        budget=budget,
        members=sec.number("members", int, default=1),
        method=sec.choice("method", ("sequence", "token"), "sequence"),
        synthetic_weight=sec.number("synthetic_weight", float, default=0.75),
        # 0 or absent: enough synthetic tokens that the student sees each once.
        synthetic_tokens=(sec.tokens("synthetic_tokens", sec.raw("synthetic_tokens"), sec.path + ("synthetic_tokens",))
                          if sec.raw("synthetic_tokens", 0) else 0),
        temperature=sec.number("temperature", float, default=1.0),
    )
    if not d.synthetic_weight < 1:
        raise sec.pos.error(sec.path + ("synthetic_weight",), "must be below 1")
    sec.done()
    return d

"""Synthetic results tables drawn from known laws, for tests, benchmarks and demos.

The truth is shaped like the paper's study: four Llama sizes, four budgets, a standard
recipe that overfits at large sizes, a regularized recipe with a clean power law in N,
ensembles whose K-asymptotes follow a power law in N, distillation students and downstream
evals. Losses get multiplicative log-normal noise (seed noise of a real run is ~0.2%).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

PAPER_SIZES = {"150m": 154_146_816, "300m": 299_649_024, "600m": 602_456_064,
               "1.4b": 1_431_371_776}
PAPER_BUDGETS = (209_715_200, 419_430_400, 838_860_800, 1_677_721_600)


@dataclass(frozen=True)
class Law:
    """L(x) = A / x^alpha + E."""

    A: float
    alpha: float
    E: float

    def __call__(self, x: np.ndarray | float) -> np.ndarray | float:
        return self.A / np.asarray(x, dtype=float) ** self.alpha + self.E

    def inverse(self, loss: float) -> float:
        return (self.A / (loss - self.E)) ** (1.0 / self.alpha) if loss > self.E else np.inf


@dataclass(frozen=True)
class SyntheticTruth:
    """The laws a synthetic study was drawn from (N in billions, D in tokens)."""

    standard_data_law: Law = Law(1887.0, 0.4, 2.864)
    regularized_floor: Law = Law(1700.0, 0.4, 2.6)  # E_reg(D)
    joint_floor: Law = Law(1700.0, 0.4, 2.45)  # double limit E_joint(D)
    regularized_n: tuple[float, float] = (0.06, 1.0)  # A, alpha of L_reg over N
    ensemble_n: tuple[float, float] = (0.05, 0.9)  # K-asymptote excess over N
    ensemble_k_alpha: float = 1.0
    member_penalty: float = 0.02  # members use shifted (not tuned) hyperparameters
    retained: float = 0.7  # distilled students keep this share of the ensemble's gain
    sizes: dict[str, int] = field(default_factory=lambda: dict(PAPER_SIZES))

    def regularized_loss(self, n_billion: float, budget: float) -> float:
        a, alpha = self.regularized_n
        return float(a / n_billion**alpha + self.regularized_floor(budget))

    def k_asymptote(self, n_billion: float, budget: float) -> float:
        a, alpha = self.ensemble_n
        return float(a / n_billion**alpha + self.joint_floor(budget))

    def ensemble_loss(self, k: int, n_billion: float, budget: float) -> float:
        floor = self.k_asymptote(n_billion, budget)
        single = self.regularized_loss(n_billion, budget) + self.member_penalty
        return float((single - floor) / k**self.ensemble_k_alpha + floor)

    def multiplier(self, loss: float, budget: float) -> float:
        """Closed-form effective-data multiplier against the standard recipe's best loss."""
        law = self.standard_data_law
        return law.inverse(loss) / law.inverse(float(law(budget)))


def synthetic_study(
    *, seed: int = 0, noise: float = 0.002, budgets: tuple[int, ...] = PAPER_BUDGETS,
    sizes: dict[str, int] | None = None, max_members: int = 5, truth: SyntheticTruth | None = None,
    with_distill: bool = True, with_eval: bool = True, failed_rows: int = 2,
) -> tuple[pd.DataFrame, SyntheticTruth]:
    """A results table in the contract's format, and the truth it was drawn from."""
    truth = truth or SyntheticTruth()
    sizes = dict(sizes or truth.sizes)
    rng = np.random.default_rng(seed)
    rows: list[dict] = []

    def add(kind: str, recipe: str, size: str, budget: int, loss: float, **extra: object) -> None:
        n_params = sizes[size]
        row = {"run_id": f"{kind}-{recipe}-{size}-{budget}-{len(rows)}", "kind": kind,
               "recipe": recipe, "status": "succeeded", "size": size, "n_params": n_params,
               "n_params_non_embedding": int(n_params * 0.8), "budget_tokens": budget,
               "epochs": 8.0, "lr": 3e-3, "weight_decay": 0.8, "seed": 0,
               "val_loss": loss * float(np.exp(rng.normal(0.0, noise))) if noise else loss,
               "K": 1, "rule": ""}
        row.update(extra)
        row["best_val_loss"] = row["val_loss"]
        rows.append(row)

    for budget in budgets:
        best_standard = float(truth.standard_data_law(budget))
        for size, n_params in sizes.items():
            n_b = n_params / 1e9
            # The standard recipe overfits away from its best size (300m): a quadratic bump in
            # log N whose minimum is exactly the standard data law.
            bump = 0.08 * np.log(n_b / 0.3) ** 2
            for worse in (0.0, 0.03, 0.08):  # the tuned point and two lattice neighbours
                add("train", "standard", size, budget, best_standard + bump + worse,
                    weight_decay=0.1)
                add("train", "regularized", size, budget,
                    truth.regularized_loss(n_b, budget) + worse, weight_decay=3.2)
            for member in range(max_members):
                add("train", "ensemble", size, budget,
                    truth.ensemble_loss(1, n_b, budget), seed=member, epochs=16.0)
            for k in range(2, max_members + 1):
                add("ensemble", "ensemble", size, budget, truth.ensemble_loss(k, n_b, budget),
                    K=k, rule="logit-mean", epochs=16.0)
        if with_distill:
            n_b = sizes["300m"] / 1e9 if "300m" in sizes else next(iter(sizes.values())) / 1e9
            size = "300m" if "300m" in sizes else next(iter(sizes))
            single = truth.regularized_loss(n_b, budget)
            teacher = truth.ensemble_loss(max_members, n_b, budget)
            for recipe, share, weight in (("distill-ensemble", truth.retained, 0.9),
                                          ("self-distill", truth.retained / 3, 0.75)):
                student = single - share * (single - teacher)
                add("distill", recipe, size, budget, student, teacher_loss=teacher,
                    single_loss=single, synthetic_weight=weight)
    if with_eval:
        base = {"arc_easy": 0.45, "piqa": 0.62, "sciq": 0.70}
        for size, n_params in sizes.items():
            for recipe, k, lift in (("regularized", 1, 0.0), ("ensemble", max_members, 0.02)):
                for task, acc in base.items():
                    value = acc + 0.03 * np.log(n_params / 1.5e8) + lift + rng.normal(0, 0.005)
                    add("eval", recipe, size, budgets[0], np.nan, task=task, acc=value,
                        acc_stderr=0.01, acc_norm=value - 0.01, acc_norm_stderr=0.01, K=k,
                        rule="logit-mean" if k > 1 else "")
    for i in range(failed_rows):
        add("train", "regularized", next(iter(sizes)), budgets[0], np.nan, epochs=64.0 + i)
        rows[-1]["status"] = "failed"
    return pd.DataFrame(rows), truth


def synthetic_tuning(table: pd.DataFrame) -> pd.DataFrame:
    """A tuning.csv-shaped table for the tuned points of a synthetic study."""
    train = table[(table["kind"] == "train") & table["recipe"].isin(["standard", "regularized"])
                  & (table["status"] == "succeeded")]
    best = train.loc[train.groupby(["recipe", "size", "budget_tokens"])["val_loss"].idxmin()]
    out = best[["recipe", "size", "budget_tokens", "epochs", "lr", "weight_decay", "val_loss"]]
    out = out.assign(certified=True, runs_used=7, lattice_size=336).reset_index(drop=True)
    out.loc[out.index[-1], "certified"] = False
    return out


MUENNIGHOFF_LAW = {"E": 1.87, "A": 521.0, "B": 1488.0, "alpha": 0.353, "beta": 0.353,
                   "R_N": 5.3}
"""Muennighoff et al.'s fitted base law and R_N* (their R_D* is 15.4)."""


def synthetic_repeated_runs(
    *, decays: dict[str, float] | None = None, sizes: dict[str, int] | None = None,
    budgets: tuple[int, ...] = PAPER_BUDGETS[:3], epochs: tuple[float, ...] = (1, 2, 4, 8, 16, 32),
    noise: float = 0.003, members: int = 4, seed: int = 0,
) -> pd.DataFrame:
    """Training rows of two recipes whose repeated data decays at different rates.

    Each recipe's loss follows the data-constrained law with Muennighoff et al.'s base law
    and its own R_D* (`decays`, default standard 4, regularized 30), at every size, budget
    and epoch count, plus a worse learning rate at each point (which the laws must ignore)
    and `members` seeds of each size's regularized point at the largest budget (the
    seed-to-seed noise a study measures). Multiplicative log-normal noise.
    """
    from scaling.fit.forms import data_constrained_loss

    decays = decays or {"standard": 4.0, "regularized": 30.0}
    sizes = dict(sizes or PAPER_SIZES)
    rng = np.random.default_rng(seed)
    rows = []

    def add(recipe: str, role: str, size: str, budget: int, epoch: float, loss: float,
            lr: float = 3e-3, seed_: int = 0) -> None:
        rows.append({"run_id": f"{recipe}-{size}-{budget}-{epoch:g}-{lr:g}-{seed_}", "kind": "train",
                     "recipe": recipe, "role": role, "status": "succeeded", "size": size,
                     "n_params": sizes[size], "n_params_non_embedding": int(0.8 * sizes[size]),
                     "budget_tokens": budget, "epochs": float(epoch), "lr": lr,
                     "weight_decay": 0.1 if recipe == "standard" else 3.2, "seed": seed_,
                     "tokens_seen": float(budget * epoch),
                     "val_loss": loss * float(np.exp(rng.normal(0.0, noise))), "K": 1, "rule": ""})

    for recipe, decay in decays.items():
        law = dict(MUENNIGHOFF_LAW, R_D=decay)
        for size, n in sizes.items():
            for budget in budgets:
                for epoch in epochs:
                    loss = float(data_constrained_loss(n, budget * epoch, budget, **law))
                    add(recipe, recipe, size, budget, epoch, loss)
                    add(recipe, recipe, size, budget, epoch, loss + 0.15, lr=1e-2)
    law = dict(MUENNIGHOFF_LAW, R_D=decays.get("regularized", 30.0))
    for size, n in sizes.items():
        budget, epoch = max(budgets), max(epochs)
        loss = float(data_constrained_loss(n, budget * epoch, budget, **law))
        for k in range(members):
            add("ensemble-member", "member", size, budget, epoch, loss, seed_=k + 1)
    return pd.DataFrame(rows)

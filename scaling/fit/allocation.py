"""The loss-minimising model size, tokens and epochs at a compute budget C = 6 N D.

Under L(N, D) = E + A / N^alpha + B / D^beta the frontier has a closed form:

    G = (alpha A / (beta B))^(1 / (alpha + beta)),
    N_opt = G (C / 6)^(beta / (alpha + beta)),   D_opt = (C / 6) / N_opt.

That law values a repeated token like a fresh one, so with only U unique tokens its answer
may ask for many epochs without knowing what they cost. The data-constrained law does know:
at a given C and U, the optimum is the N that minimises L(N, C / (6 N), U), found on a grid
of model sizes spanning epochs from 1e-6 to 1e6 and refined by golden-section search.
Intervals come from the fit's bootstrap replicates, each allocated the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from scaling.fit.bootstrap import Estimate, format_number
from scaling.fit.forms import CHINCHILLA, data_constrained_loss
from scaling.fit.joint import JointLawFit

_GRID = 241
_GOLDEN_STEPS = 60
_EPOCH_SPAN = 1e6


@dataclass(frozen=True, eq=False)
class Allocation:
    """The optimum at one compute budget, each number with its bootstrap interval."""

    law: str
    compute: float
    """Training FLOPs, C = 6 N D."""
    unique_tokens: float | None
    n_params: Estimate
    tokens: Estimate
    """Tokens seen, D = C / (6 N)."""
    epochs: Estimate | None
    """D / U, when the unique tokens are known."""
    loss: Estimate
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        lines = [f"at C = {format_number(self.compute)} FLOPs"
                 + (f" with U = {format_number(self.unique_tokens)} unique tokens"
                    if self.unique_tokens is not None else "") + ":",
                 f"  N = {self.n_params.format()} parameters",
                 f"  D = {self.tokens.format()} tokens seen"]
        if self.epochs is not None:
            lines.append(f"  epochs = {self.epochs.format()}")
        lines.append(f"  loss = {self.loss.format()}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        return {"law": self.law, "compute": self.compute, "unique_tokens": self.unique_tokens,
                "n_params": self.n_params.to_dict(), "tokens": self.tokens.to_dict(),
                "epochs": None if self.epochs is None else self.epochs.to_dict(),
                "loss": self.loss.to_dict(), "notes": list(self.notes)}


def optimal_allocation(law: JointLawFit, compute: float,
                       unique_tokens: float | None = None) -> Allocation:
    """The loss-minimising N, D (and epochs, given U) at `compute` FLOPs (C = 6 N D).

    For a fitted L(N, D): the closed-form frontier (U, when given, only turns D into
    epochs). For the data-constrained law: the optimum under the data limit U, which it
    needs. Raises ValueError for a non-positive compute or unique-token count.
    """
    compute = float(compute)
    if not math.isfinite(compute) or compute <= 0:
        raise ValueError(f"compute must be a positive number of FLOPs, got {compute}")
    if unique_tokens is not None:
        unique_tokens = float(unique_tokens)
        if not math.isfinite(unique_tokens) or unique_tokens <= 0:
            raise ValueError(f"unique_tokens must be a positive number, got {unique_tokens}")
    names = law.param_names
    point = {k: np.array([float(v)]) for k, v in law.params.items()}
    columns = None if law.samples is None else {k: law.samples[:, i] for i, k in enumerate(names)}
    notes = []
    if law.law == CHINCHILLA.name:
        solve = _chinchilla_frontier
        if unique_tokens is not None:
            notes.append("L(N, D) values a repeated token like a fresh one; fit the "
                         "data-constrained law for the optimum under the data limit")
    else:
        if unique_tokens is None:
            raise ValueError("the data-constrained law needs unique_tokens (the data limit U)")
        solve = _constrained_optimum
    n_best, loss = solve(point, compute, unique_tokens)
    estimates = {"n": (n_best[0], None), "loss": (loss[0], None)}
    if columns is not None:
        ok = np.all(np.isfinite(law.samples), axis=1)
        n_s, l_s = np.full(ok.size, np.nan), np.full(ok.size, np.nan)
        if ok.any():
            n_s[ok], l_s[ok] = solve({k: v[ok] for k, v in columns.items()}, compute, unique_tokens)
        estimates = {"n": (n_best[0], n_s), "loss": (loss[0], l_s)}
    if not law.identifiable:
        notes.append("the law has parameters the data do not identify (see its warnings): "
                     "read this optimum with care")
    level = law.level
    n_est = Estimate.from_samples(estimates["n"][0], estimates["n"][1], level)
    d_samples = None if estimates["n"][1] is None else compute / (6.0 * estimates["n"][1])
    d_est = Estimate.from_samples(compute / (6.0 * n_est.value), d_samples, level)
    epochs = None
    if unique_tokens is not None:
        epochs = Estimate.from_samples(d_est.value / unique_tokens,
                                       None if d_samples is None else d_samples / unique_tokens,
                                       level)
    return Allocation(law.law, compute, unique_tokens, n_est, d_est, epochs,
                      Estimate.from_samples(*estimates["loss"], level), notes)


def _chinchilla_frontier(p: dict[str, np.ndarray], compute: float,
                         unique_tokens: float | None) -> tuple[np.ndarray, np.ndarray]:
    alpha, beta = p["alpha"], p["beta"]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        g = (alpha * p["A"] / (beta * p["B"])) ** (1.0 / (alpha + beta))
        n = g * (compute / 6.0) ** (beta / (alpha + beta))
        d = compute / (6.0 * n)
        loss = p["E"] + p["A"] / n**alpha + p["B"] / d**beta
    return n, loss


def _constrained_optimum(p: dict[str, np.ndarray], compute: float,
                         unique_tokens: float) -> tuple[np.ndarray, np.ndarray]:
    """argmin over N of L(N, C / 6N, U), per parameter row: a log-spaced grid of N covering
    epochs 1e-6 to 1e6, then golden-section search between the best cell's neighbours."""
    flops = compute / 6.0
    centre = math.log(flops / unique_tokens)  # log N at one epoch
    span = math.log(_EPOCH_SPAN)
    grid = np.linspace(centre - span, centre + span, _GRID)
    params = {k: np.asarray(v, dtype=float)[:, None] for k, v in p.items()}

    def loss_at(log_n: np.ndarray) -> np.ndarray:
        n = np.exp(log_n)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return data_constrained_loss(n, flops / n, unique_tokens, params["E"], params["A"],
                                         params["B"], params["alpha"], params["beta"],
                                         params["R_D"], params["R_N"])

    values = loss_at(np.broadcast_to(grid, (next(iter(params.values())).shape[0], _GRID)))
    best = np.argmin(np.where(np.isfinite(values), values, np.inf), axis=1)
    low = grid[np.maximum(best - 1, 0)][:, None]
    high = grid[np.minimum(best + 1, _GRID - 1)][:, None]
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    for _ in range(_GOLDEN_STEPS):
        left, right = high - ratio * (high - low), low + ratio * (high - low)
        go_left = loss_at(left) <= loss_at(right)
        high = np.where(go_left, right, high)
        low = np.where(go_left, low, left)
    log_n = (low + high) / 2.0
    return np.exp(log_n[:, 0]), loss_at(log_n)[:, 0]

"""Laws as data: each law's form, its log-space parametrisation and its derivatives.

A law is fitted in log space, log L = logsumexp(terms, e), with every positive quantity
(amplitudes, the asymptote, decay constants) written as the exponential of a free
parameter, so positivity follows from the parametrisation instead of being imposed by
bounds. Inputs enter divided by a reference (the geometric mean of the data; tokens and
unique tokens share one reference, since they are counts of the same thing), which makes
starting points and bounds independent of units. A form turns solver parameters theta
(B, P) and prepared inputs into log L (B, n) and its Jacobian (B, n, P); the solver
(``scaling.fit.solver``) and the bootstrap know nothing else about a law.

The forms:

- ``power_law``: L(x) = A / x^alpha + E, one input (parameters, members, budget).
- ``chinchilla``: L(N, D) = E + A / N^alpha + B / D^beta, Hoffmann et al.'s approach 3.
- ``data_constrained``: Muennighoff et al. (2023), the same law of effective parameters N'
  and effective data D':

      R_D = max(D / U - 1, 0)                       repetitions of the U unique tokens
      D'  = U_D + U_D R_D* (1 - exp(-R_D / R_D*))   with U_D = min(U, D)
      U_N = min(N_opt(U), N)                        N_opt(U): the compute-optimal
      R_N = max(N / U_N - 1, 0)                     parameters for U tokens under the
      N'  = U_N + U_N R_N* (1 - exp(-R_N / R_N*))   base law, (alpha A / (beta B))^(1/alpha)
                                                    * U^(beta / alpha)

  R_D* and R_N* are the decay constants: the R-th repetition of a token (of the unique
  parameters) is worth exp(-R / R*) of a fresh one, 1/e of it at R = R*, and the value of
  all repetitions together never passes U R*.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def _logsumexp_shares(terms: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """log(sum(exp(terms))) and each term's share of the sum, broadcast to one shape."""
    top = terms[0]
    for t in terms[1:]:
        top = np.maximum(top, t)
    parts = [np.exp(t - top) for t in terms]
    total = parts[0]
    for p in parts[1:]:
        total = total + p
    shape = np.broadcast_shapes(*(t.shape for t in terms))
    return top + np.log(total), [np.broadcast_to(p / total, shape) for p in parts]


@dataclass(frozen=True)
class LawForm:
    """What the solver needs of a law: parameter names and log L with its Jacobian."""

    name: str
    theta_names: tuple[str, ...]
    """The solver's parameters, in order (a = log A' and so on)."""
    params: tuple[str, ...]
    """The natural parameters a fit reports, in order."""
    inputs: tuple[str, ...]
    """The inputs, in the order ``prepare`` takes them."""

    @property
    def n_theta(self) -> int:
        return len(self.theta_names)

    def log_predict(self, theta: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """log L (B, n) and its Jacobian (B, n, P) at theta (B, P)."""
        raise NotImplementedError

    def residuals(self, theta: np.ndarray, X: np.ndarray, y: np.ndarray,
                  method: str) -> tuple[np.ndarray, np.ndarray]:
        """Residuals where the method measures them (log L or L) and their Jacobian."""
        log_pred, dlog = self.log_predict(theta, X)
        if method == "huber-log":
            return log_pred - np.log(y), dlog
        pred = np.exp(log_pred)
        return pred - y, pred[..., None] * dlog

    def predict(self, theta: np.ndarray, X: np.ndarray) -> np.ndarray:
        """L (n,) at one parameter vector (P,)."""
        return np.exp(self.log_predict(np.asarray(theta, dtype=float)[None, :], X)[0][0])


@dataclass(frozen=True)
class PowerLawForm(LawForm):
    """L(x) = A / x^alpha + E; theta = (a, alpha, e); X is lu = log(x / x_ref), shape (n,).

    Its arithmetic is written out as it was before laws became data, so every one-variable
    fit (and every number an earlier study reported) stays bit-identical."""

    def log_predict(self, theta: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        log_pred, power_share, floor_share = self._shares(theta, X)
        return log_pred, np.stack([power_share, -X * power_share, floor_share], axis=-1)

    def residuals(self, theta: np.ndarray, X: np.ndarray, y: np.ndarray,
                  method: str) -> tuple[np.ndarray, np.ndarray]:
        log_pred, power_share, floor_share = self._shares(theta, X)
        if method == "huber-log":
            jac = np.stack([power_share, -X * power_share, floor_share], axis=-1)
            return log_pred - np.log(y), jac
        pred = np.exp(log_pred)
        jac = np.stack([pred * power_share, -X * pred * power_share, pred * floor_share], axis=-1)
        return pred - y, jac

    def predict(self, theta: np.ndarray, X: np.ndarray) -> np.ndarray:
        a, alpha, e = theta
        return np.exp(np.logaddexp(a - alpha * X, e))

    @staticmethod
    def _shares(theta: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # logsumexp(log_power, e) with the usual max shift, so large exponents never overflow
        a, alpha, e = theta[:, 0:1], theta[:, 1:2], theta[:, 2:3]
        log_power = a - alpha * X
        top = np.maximum(log_power, e)
        power_share = np.exp(log_power - top)
        floor_share = np.exp(e - top)
        total = power_share + floor_share
        log_pred = top + np.log(total)
        power_share /= total
        floor_share = np.broadcast_to(floor_share / total, power_share.shape)
        return log_pred, power_share, floor_share


@dataclass(frozen=True)
class ChinchillaForm(LawForm):
    """L = E + A / N^alpha + B / D^beta; theta = (a, b, alpha, beta, e); X = (lN, lD)."""

    def log_predict(self, theta: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a, b, alpha, beta, e = (theta[:, i:i + 1] for i in range(5))
        l_n, l_d = X[0], X[1]
        log_pred, (s_n, s_d, s_e) = _logsumexp_shares([a - alpha * l_n, b - beta * l_d, e])
        return log_pred, np.stack([s_n, s_d, -l_n * s_n, -l_d * s_d, s_e], axis=-1)


def log_unique_params(a: np.ndarray, b: np.ndarray, alpha: np.ndarray, beta: np.ndarray,
                      log_u: np.ndarray) -> np.ndarray:
    """log N_opt(U): the compute-optimal parameters for U tokens under the base law.

    From the frontier of L = E + A / N^alpha + B / D^beta at C = 6 N D,
    N_opt = (alpha A / (beta B))^(1 / alpha) * D^(beta / alpha) (the 6 cancels), so
    log N_opt = (a - b + log alpha - log beta + beta log U) / alpha, in any units where N
    and D are divided by the references the amplitudes were fitted with.
    """
    return (a - b + np.log(alpha) - np.log(beta) + beta * log_u) / alpha


def effective_repeats(unique: np.ndarray, repeats: np.ndarray, decay: np.ndarray) -> np.ndarray:
    """U + U R* (1 - exp(-R / R*)): what U unique tokens (or parameters) repeated R times are
    worth, at decay constant R* (the published definition of D' and of N')."""
    unique, repeats, decay = np.broadcast_arrays(*(np.asarray(v, dtype=float)
                                                   for v in (unique, repeats, decay)))
    return unique + unique * decay * -np.expm1(-repeats / decay)


@dataclass(frozen=True)
class DataConstrainedForm(LawForm):
    """Muennighoff et al.'s law; theta = (a, b, alpha, beta, e, r_d, r_n) with
    R_D* = exp(r_d) and R_N* = exp(r_n); X = (lN, lD, lU), D and U on one reference."""

    def log_predict(self, theta: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(over="ignore", invalid="ignore"):
            return self._log_predict(theta, X)

    def _log_predict(self, theta: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a, b, alpha, beta, e, r_d, r_n = (theta[:, i:i + 1] for i in range(7))
        l_n, l_d, l_u = X[0], X[1], X[2]
        # Effective data: the unique tokens, plus what their repetitions are still worth.
        log_d, dlogd_drd, _ = _log_effective(np.minimum(l_u, l_d),
                                             np.maximum(np.expm1(l_d - l_u), 0.0), r_d)
        # Effective parameters: only parameters beyond N_opt(U) count as "repeated", and
        # N_opt(U) moves with the base law's parameters, hence the chain rule through g.
        g = log_unique_params(a, b, alpha, beta, l_u)
        excess = l_n > g
        l_un = np.where(excess, g, l_n)
        over = np.where(excess, np.expm1(l_n - l_un), 0.0)  # R_N
        log_n, dlogn_drn, decay_n = _log_effective(l_un, over, r_n)
        # d log N' / d g = 1 - exp(-R_N / R_N*) (R_N + 1) / (1 + R_N* (1 - exp(-R_N / R_N*)));
        # zero where N <= N_opt(U), since N' = N there.
        r_star = np.exp(r_n)
        dlogn_dg = np.where(excess, 1.0 - decay_n * (over + 1.0)
                            / (1.0 + r_star * (1.0 - decay_n)), 0.0)
        dg = (1.0 / alpha, -1.0 / alpha, (1.0 - alpha * g) / alpha**2,
              (-1.0 / beta + l_u) / alpha)
        log_pred, (s_n, s_d, s_e) = _logsumexp_shares([a - alpha * log_n, b - beta * log_d, e])
        via_g = -alpha * s_n * dlogn_dg  # d log L / d g
        jac = [s_n + via_g * dg[0],
               s_d + via_g * dg[1],
               -log_n * s_n + via_g * dg[2],
               -log_d * s_d + via_g * dg[3],
               s_e,
               -beta * s_d * dlogd_drd,
               -alpha * s_n * dlogn_drn]
        shape = log_pred.shape
        return log_pred, np.stack([np.broadcast_to(j, shape) for j in jac], axis=-1)


def _log_effective(log_unique: np.ndarray, repeats: np.ndarray,
                   r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log(U (1 + R* (1 - exp(-R / R*)))) with R* = exp(r), its derivative in r, and
    exp(-R / R*) (what the last repetition is worth relative to a fresh token)."""
    r_star = np.exp(r)
    decay = np.exp(-repeats / r_star)
    factor = 1.0 + r_star * -np.expm1(-repeats / r_star)
    # d/dr of R* (1 - exp(-R/R*)) = R* (1 - exp(-R/R*)) - R exp(-R/R*)
    d_factor = (factor - 1.0) - repeats * decay
    return log_unique + np.log(factor), d_factor / factor, decay


POWER_LAW = PowerLawForm("power-law", ("a", "alpha", "e"), ("A", "alpha", "E"), ("x",))
CHINCHILLA = ChinchillaForm("chinchilla", ("a", "b", "alpha", "beta", "e"),
                            ("E", "A", "B", "alpha", "beta"), ("N", "D"))
DATA_CONSTRAINED = DataConstrainedForm(
    "data-constrained", ("a", "b", "alpha", "beta", "e", "r_d", "r_n"),
    ("E", "A", "B", "alpha", "beta", "R_D", "R_N"), ("N", "D", "U"))
FORMS = {f.name: f for f in (POWER_LAW, CHINCHILLA, DATA_CONSTRAINED)}


@dataclass(frozen=True)
class Scales:
    """The references inputs are divided by: N by n_ref, tokens (D and U) by t_ref."""

    n_ref: float
    t_ref: float

    @classmethod
    def of(cls, n_params: np.ndarray, tokens: np.ndarray) -> Scales:
        return cls(float(np.exp(np.mean(np.log(n_params)))), float(np.exp(np.mean(np.log(tokens)))))

    def prepare(self, n_params: np.ndarray, tokens: np.ndarray,
                unique: np.ndarray | None = None) -> np.ndarray:
        rows = [np.log(n_params / self.n_ref), np.log(tokens / self.t_ref)]
        if unique is not None:
            rows.append(np.log(unique / self.t_ref))
        return np.vstack(rows)

    def natural(self, form: LawForm, theta: np.ndarray) -> np.ndarray:
        """Rows of theta (B, P) as the form's natural parameters (B, len(form.params))."""
        theta = np.atleast_2d(theta)
        a, b, alpha, beta, e = (theta[:, i] for i in range(5))
        cols = [np.exp(e), np.exp(a + alpha * math.log(self.n_ref)),
                np.exp(b + beta * math.log(self.t_ref)), alpha, beta]
        if form is DATA_CONSTRAINED:
            cols += [np.exp(theta[:, 5]), np.exp(theta[:, 6])]
        return np.column_stack(cols)

    def theta(self, form: LawForm, params: dict[str, float]) -> np.ndarray:
        """The inverse of ``natural`` for one parameter set."""
        alpha, beta = params["alpha"], params["beta"]
        out = [math.log(params["A"]) - alpha * math.log(self.n_ref),
               math.log(params["B"]) - beta * math.log(self.t_ref), alpha, beta,
               math.log(params["E"])]
        if form is DATA_CONSTRAINED:
            out += [math.log(params["R_D"]), math.log(params["R_N"])]
        return np.array(out)


# --- the laws in natural units (arrays broadcast: parameters may be bootstrap columns) -------

def chinchilla_loss(n_params: np.ndarray, tokens: np.ndarray, E: np.ndarray, A: np.ndarray,
                    B: np.ndarray, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """L = E + A / N^alpha + B / D^beta."""
    return E + A / np.asarray(n_params, dtype=float) ** alpha + B / np.asarray(tokens, dtype=float) ** beta


def unique_params(unique_tokens: np.ndarray, A: np.ndarray, B: np.ndarray, alpha: np.ndarray,
                  beta: np.ndarray) -> np.ndarray:
    """N_opt(U) = (alpha A / (beta B))^(1 / alpha) U^(beta / alpha): the compute-optimal
    parameter count for U tokens under the base law."""
    return np.exp(log_unique_params(np.log(A), np.log(B), np.asarray(alpha, dtype=float),
                                    np.asarray(beta, dtype=float),
                                    np.log(np.asarray(unique_tokens, dtype=float))))


def effective_tokens(tokens: np.ndarray, unique_tokens: np.ndarray, R_D: np.ndarray) -> np.ndarray:
    """D' = U_D + U_D R_D* (1 - exp(-R_D / R_D*)), U_D = min(U, D), R_D = max(D / U - 1, 0)."""
    tokens, unique = np.asarray(tokens, dtype=float), np.asarray(unique_tokens, dtype=float)
    return effective_repeats(np.minimum(unique, tokens), np.maximum(tokens / unique - 1.0, 0.0), R_D)


def effective_params(n_params: np.ndarray, unique_tokens: np.ndarray, R_N: np.ndarray,
                     A: np.ndarray, B: np.ndarray, alpha: np.ndarray,
                     beta: np.ndarray) -> np.ndarray:
    """N' = U_N + U_N R_N* (1 - exp(-R_N / R_N*)), U_N = min(N_opt(U), N), R_N = N / U_N - 1."""
    n_params = np.asarray(n_params, dtype=float)
    u_n = np.minimum(unique_params(unique_tokens, A, B, alpha, beta), n_params)
    return effective_repeats(u_n, n_params / u_n - 1.0, R_N)


def data_constrained_loss(n_params: np.ndarray, tokens: np.ndarray, unique_tokens: np.ndarray,
                          E: np.ndarray, A: np.ndarray, B: np.ndarray, alpha: np.ndarray,
                          beta: np.ndarray, R_D: np.ndarray, R_N: np.ndarray) -> np.ndarray:
    """L = E + A / N'^alpha + B / D'^beta (Muennighoff et al. 2023)."""
    n_eff = effective_params(n_params, unique_tokens, R_N, A, B, alpha, beta)
    d_eff = effective_tokens(tokens, unique_tokens, R_D)
    return E + A / n_eff**alpha + B / d_eff**beta

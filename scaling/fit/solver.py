"""Objective, gradient and a batched Gauss-Newton solver for every law (``scaling.fit.forms``).

A law's form maps solver parameters theta (log amplitudes, exponents, log asymptote, ...)
and prepared inputs X to log L and its Jacobian; everything here works on that alone. For
the one-variable law L(x) = A / x^alpha + E, theta = (a, alpha, e) with A' = exp(a) and
E = exp(e), and X is lu = log(x / x_ref) with x_ref the geometric mean of the data, which
makes starting points and bounds independent of the unit of x (parameters, billions of
parameters, tokens, ensemble members); A = A' * x_ref**alpha undoes it. The form defaults
to that law, so the one-variable callers pass lu where others pass their X.

Two objectives, both written in units of delta so that optimiser tolerances mean the same
thing for every data set:

- "huber-log": residual r = log L_pred - log y (e.g. logsumexp(a - alpha*lu, e) - log y), Huber
  loss with threshold delta (robust to one bad run; the Chinchilla-replication choice).
- "least-squares": residual r = L_pred - y on the raw loss, squared (what the paper's authors
  did with curve_fit), scaled by (delta * mean(y))**2.

Everything here is vectorised over a leading batch axis B (bootstrap replicates or starting
points), which is what makes a 1000-resample bootstrap of a whole study take seconds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

from scaling.fit.forms import POWER_LAW, LawForm

METHODS = ("huber-log", "least-squares")
# Damping never falls below this share of the largest curvature of the row: a direction with
# (almost) no curvature, like e when E is negligible, then gets a bounded step instead of an
# enormous one that is rejected until the damping overflows.
_DIAG_FLOOR = 1e-6
# An objective this small (in delta units) is an exact interpolation: nothing left to improve.
_EXACT = 1e-12
# A start is abandoned once a sibling start of the same problem converged this much lower.
_SIBLING_MARGIN = 1e-3
_STALL_WINDOW = 10
_STALL_GAIN = 1e-6


_blas_limit_depth = 0


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run BLAS on one thread inside fits (re-entrant; a no-op without threadpoolctl).

    L-BFGS-B calls BLAS on vectors of length 3. With a multi-threaded OpenBLAS on a busy
    machine every such call pays for waking its threads: measured 50x slower fits on a loaded
    2-core box. Only the outermost fit pays the ~3 ms it takes to set the limit.
    """
    global _blas_limit_depth
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it fits are correct, only slower under load
        threadpool_limits = None
    if _blas_limit_depth > 0 or threadpool_limits is None:
        yield
        return
    _blas_limit_depth += 1
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        _blas_limit_depth -= 1


def residuals(
    theta: np.ndarray, lu: np.ndarray, y: np.ndarray, method: str, form: LawForm = POWER_LAW
) -> tuple[np.ndarray, np.ndarray]:
    """Residuals (B, n) and their Jacobian (B, n, P) with respect to theta (B, P); lu is the
    form's prepared input (log x / x_ref for the one-variable law)."""
    return form.residuals(theta, lu, y, method)


def predict(theta: np.ndarray, lu: np.ndarray, form: LawForm = POWER_LAW) -> np.ndarray:
    """L at the prepared inputs for one parameter vector."""
    return form.predict(theta, lu)


def residual_scale(y: np.ndarray, method: str, delta: float) -> np.ndarray:
    """Per-row residual unit: delta in log space, delta * mean loss on the raw scale."""
    if method == "huber-log":
        return np.full(y.shape[:-1] + (1,), delta)
    return delta * np.mean(y, axis=-1, keepdims=True)


def loss_terms(
    r: np.ndarray, scale: np.ndarray, method: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-point loss rho, its derivative psi and the IRLS weight psi / r (all in delta units)."""
    z = r / scale
    if method == "huber-log":
        abs_z = np.abs(z)
        inside = abs_z <= 1.0
        rho = np.where(inside, 0.5 * z * z, abs_z - 0.5)
        psi = np.clip(z, -1.0, 1.0) / scale
        weight = np.where(inside, 1.0, 1.0 / np.maximum(abs_z, 1e-300)) / scale**2
    else:
        rho = 0.5 * z * z
        psi = z / scale
        weight = np.ones_like(z) / scale**2
    return rho, psi, weight


def objective(
    theta: np.ndarray, lu: np.ndarray, y: np.ndarray, counts: np.ndarray, method: str,
    delta: float, form: LawForm = POWER_LAW,
) -> np.ndarray:
    """Weighted objective per batch row; counts are the pairs-bootstrap multiplicities."""
    r, _ = residuals(theta, lu, y, method, form)
    rho, _, _ = loss_terms(r, residual_scale(y, method, delta), method)
    return np.sum(counts * rho, axis=-1)


def value_and_grad(
    theta: np.ndarray, lu: np.ndarray, y: np.ndarray, method: str, delta: float,
    form: LawForm = POWER_LAW,
) -> tuple[float, np.ndarray]:
    """Objective and gradient of one parameter vector, in the form scipy's L-BFGS-B wants."""
    r, jac = residuals(theta[None, :], lu, y[None, :], method, form)
    rho, psi, _ = loss_terms(r, residual_scale(y[None, :], method, delta), method)
    return float(rho.sum()), np.einsum("bn,bnk->k", psi, jac)


def solve_batched(
    theta0: np.ndarray,
    lu: np.ndarray,
    y: np.ndarray,
    counts: np.ndarray,
    method: str,
    delta: float,
    bounds: np.ndarray,
    max_iter: int = 200,
    groups: np.ndarray | None = None,
    form: LawForm = POWER_LAW,
    free: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Levenberg-Marquardt on the IRLS (Gauss-Newton) model, one independent problem per row.

    theta0 (B, P) starts, y and counts (B, n). Returns theta (B, P), objective (B,) and a
    converged flag (B,). Rows stop independently: a row is converged when an accepted step
    no longer changes the objective or the parameters, when it interpolates the points
    exactly, when no step, however damped, lowers it (a minimum to machine precision), or
    when it stalls in a flat valley. Rows still moving after max_iter are not converged.

    `groups` (B,) marks rows that are alternative starts of the same problem: a row stops
    early, unconverged, once a sibling has converged to an objective clearly below its own,
    since only the best start of a group is used. `free` (P,) marks the parameters that move;
    the others stay at their starting values (a law fitted with some parameters held fixed).
    """
    theta = np.clip(theta0.astype(float), bounds[:, 0], bounds[:, 1])
    n_rows = theta.shape[0]
    scale = residual_scale(y, method, delta)
    r, jac = residuals(theta, lu, y, method, form)
    value = np.sum(counts * loss_terms(r, scale, method)[0], axis=-1)
    damping = np.full(n_rows, 1e-3)
    converged = np.zeros(n_rows, dtype=bool)
    active = np.flatnonzero(np.isfinite(value))
    checkpoint = value.copy()
    best_in_group = None if groups is None else np.full(int(groups.max()) + 1, np.inf)
    eye = np.eye(theta.shape[1])
    held = None if free is None else ~np.asarray(free, dtype=bool)
    for iteration in range(1, max_iter + 1):
        if active.size == 0:
            break
        th, yy, cc, sc = theta[active], y[active], counts[active], scale[active]
        _, psi, weight = loss_terms(r[active], sc, method)
        jac_a = jac[active]
        grad = ((cc * psi)[:, None, :] @ jac_a)[:, 0, :]
        hess = jac_a.transpose(0, 2, 1) @ (jac_a * (cc * weight)[:, :, None])
        # Active set: a parameter sitting on a bound with the gradient pushing it outwards is
        # frozen for this step, so the others are solved for as if it were fixed; otherwise the
        # clipped step is inconsistent and the row crawls along the bound forever.
        frozen = (((th <= bounds[:, 0] + 1e-12) & (grad > 0))
                  | ((th >= bounds[:, 1] - 1e-12) & (grad < 0)))
        if held is not None:
            frozen = frozen | held
        if frozen.any():
            grad = np.where(frozen, 0.0, grad)
            keep = ~frozen
            hess = hess * keep[:, :, None] * keep[:, None, :] + eye * frozen[:, :, None]
        diag = np.diagonal(hess, axis1=1, axis2=2)
        # Marquardt's scaling (damping proportional to the curvature of each parameter) keeps
        # the step sensible when a, alpha and e have very different curvatures.
        floor = _DIAG_FLOOR * np.max(diag, axis=1, keepdims=True) + 1e-300
        damped = hess + (damping[active, None] * np.maximum(diag, floor))[:, :, None] * eye
        step = -np.linalg.solve(damped, grad[:, :, None])[:, :, 0]
        candidate = np.clip(th + step, bounds[:, 0], bounds[:, 1])
        r_new, jac_new = residuals(candidate, lu, yy, method, form)
        new_value = np.sum(cc * loss_terms(r_new, sc, method)[0], axis=-1)
        old_value = value[active]
        accept = np.isfinite(new_value) & (new_value <= old_value)
        moved = np.max(np.abs(candidate - th), axis=1)
        gain = (old_value - new_value) / np.maximum(old_value, 1e-30)
        taken = active[accept]
        theta[taken] = candidate[accept]
        value[taken] = new_value[accept]
        r[taken] = r_new[accept]
        jac[taken] = jac_new[accept]
        damping[active] = np.clip(np.where(accept, damping[active] / 3.0, damping[active] * 4.0),
                                  1e-12, None)
        done = ((accept & ((gain < 1e-10) | (moved < 1e-9) | (new_value < _EXACT)))
                | (damping[active] > 1e10))
        if iteration % _STALL_WINDOW == 0:
            # A row whose objective improved by less than _STALL_GAIN over the window sits in a
            # flat valley: the data do not determine where along it the optimum lies, and any
            # point of the valley fits as well. It counts as converged where it stands.
            stalled = ((checkpoint[active] - value[active])
                       <= _STALL_GAIN * np.maximum(value[active], 1e-12))
            done |= stalled
            checkpoint[active] = value[active]
        converged[active[done]] = True
        if best_in_group is not None:
            finished = active[done]
            np.minimum.at(best_in_group, groups[finished], value[finished])
            beaten = value[active] > best_in_group[groups[active]] * (1 + _SIBLING_MARGIN) + 1e-12
            done |= beaten
        active = active[~done]
    return theta, value, converged

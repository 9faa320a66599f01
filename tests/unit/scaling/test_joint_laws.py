"""The field's laws: L(N, D), the data-constrained law, their diagnostics and allocation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from scaling import (
    FitInputError,
    effective_params,
    effective_tokens,
    fit_chinchilla_law,
    fit_data_constrained_law,
    fit_power_law,
    optimal_allocation,
)
from scaling.fit.forms import (
    CHINCHILLA,
    DATA_CONSTRAINED,
    POWER_LAW,
    Scales,
    chinchilla_loss,
    data_constrained_loss,
    unique_params,
)

# Besiroglu et al.'s replication of Hoffmann et al.'s approach 3 (rounded), and Muennighoff
# et al.'s published data-constrained fit.
CHINCHILLA_TRUTH = {"E": 1.82, "A": 482.0, "B": 2085.0, "alpha": 0.348, "beta": 0.366}
MUENNIGHOFF = {"E": 1.87, "A": 521.0, "B": 1488.0, "alpha": 0.353, "beta": 0.353, "R_D": 15.4,
               "R_N": 5.3}


def chinchilla_design() -> tuple[np.ndarray, np.ndarray]:
    n, d = np.meshgrid(np.geomspace(2e7, 2e9, 6), np.geomspace(4e8, 4e10, 6), indexing="ij")
    return n.ravel(), d.ravel()


def repeated_design() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Five sizes, three unique-token budgets, 1 to 100 epochs: 75 runs."""
    n, u, epochs = np.meshgrid(np.geomspace(1e7, 2e9, 5), np.geomspace(1e8, 1e10, 3),
                               np.array([1.0, 3.0, 10.0, 30.0, 100.0]), indexing="ij")
    return n.ravel(), (u * epochs).ravel(), u.ravel()


def noisy(loss: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    return loss * np.exp(np.random.default_rng(seed).normal(0.0, sigma, loss.shape))


# --- the formulas, by hand --------------------------------------------------------------------

def test_effective_data_matches_hand_computed_values() -> None:
    # 4 epochs of 100 unique tokens at R_D* = 15.4: 3 repetitions worth 15.4 (1 - e^(-3/15.4))
    assert effective_tokens(400.0, 100.0, 15.4) == pytest.approx(
        100 + 100 * 15.4 * (1 - math.exp(-3 / 15.4)), rel=1e-12)
    assert effective_tokens(400.0, 100.0, 15.4) == pytest.approx(372.5877521508837, rel=1e-12)
    assert effective_tokens(100.0, 100.0, 15.4) == 100.0  # one epoch: nothing repeated
    assert effective_tokens(50.0, 100.0, 15.4) == 50.0  # half an epoch: D' = D
    # a very slow decay values repetitions like fresh tokens; a fast one saturates at U (1 + R*)
    assert effective_tokens(1e4, 100.0, 1e9) == pytest.approx(1e4, rel=1e-6)
    assert effective_tokens(1e9, 100.0, 2.0) == pytest.approx(300.0, rel=1e-9)


def test_effective_params_use_the_compute_optimal_size_of_the_unique_data() -> None:
    # Muennighoff's base law: alpha = beta, so N_opt(U) = (A / B)^(1 / alpha) U = 0.0512 U
    u_n = unique_params(1e9, 521.0, 1488.0, 0.353, 0.353)
    assert u_n == pytest.approx((521.0 / 1488.0) ** (1 / 0.353) * 1e9, rel=1e-12)
    assert u_n / 1e9 == pytest.approx(0.0512, abs=1e-4)
    # a model below N_opt(U) has no excess parameters; above it, R_N = N / U_N - 1 decays
    assert effective_params(1e7, 1e9, 5.3, 521.0, 1488.0, 0.353, 0.353) == 1e7
    n = 4 * u_n
    assert effective_params(n, 1e9, 5.3, 521.0, 1488.0, 0.353, 0.353) == pytest.approx(
        u_n + u_n * 5.3 * (1 - math.exp(-3 / 5.3)), rel=1e-12)


def test_the_forms_agree_with_the_natural_formulas_and_their_jacobians_are_exact() -> None:
    rng = np.random.default_rng(0)
    n = np.exp(rng.uniform(np.log(1e7), np.log(1e10), 40))
    u = np.exp(rng.uniform(np.log(1e8), np.log(1e11), 40))
    d = u * np.exp(rng.uniform(np.log(0.5), np.log(100.0), 40))
    scales = Scales.of(n, d)
    X = scales.prepare(n, d, u)
    theta = scales.theta(DATA_CONSTRAINED, MUENNIGHOFF)
    assert DATA_CONSTRAINED.predict(theta, X) == pytest.approx(
        data_constrained_loss(n, d, u, **MUENNIGHOFF), rel=1e-12)
    chin = {k: MUENNIGHOFF[k] for k in CHINCHILLA.params}
    assert CHINCHILLA.predict(scales.theta(CHINCHILLA, chin), X[:2]) == pytest.approx(
        chinchilla_loss(n, d, **chin), rel=1e-12)
    for form, inputs, th in ((POWER_LAW, X[0], np.array([0.3, 0.5, 0.7])),
                             (CHINCHILLA, X[:2], scales.theta(CHINCHILLA, chin)),
                             (DATA_CONSTRAINED, X, theta)):
        _, jac = form.log_predict(th[None, :], inputs)
        for k in range(th.size):
            step = np.zeros_like(th)
            step[k] = 1e-6
            numeric = (form.log_predict((th + step)[None, :], inputs)[0]
                       - form.log_predict((th - step)[None, :], inputs)[0]) / 2e-6
            assert np.abs(jac[0, :, k] - numeric[0]).max() < 1e-7, (form.name, k)


# --- recovery and coverage --------------------------------------------------------------------

def test_chinchilla_law_recovers_known_parameters() -> None:
    n, d = chinchilla_design()
    fit = fit_chinchilla_law(n, d, noisy(chinchilla_loss(n, d, **CHINCHILLA_TRUTH), 0.002, 1),
                             n_boot=200, seed=1)
    assert fit.params["E"] == pytest.approx(1.82, abs=0.02)
    assert fit.params["alpha"] == pytest.approx(0.348, abs=0.02)
    assert fit.params["beta"] == pytest.approx(0.366, abs=0.02)
    assert fit.identifiable and fit.converged and not fit.warnings
    assert set(fit.intervals) == set(CHINCHILLA_TRUTH)
    assert fit.predict(1e9, 1e10) == pytest.approx(chinchilla_loss(1e9, 1e10, **CHINCHILLA_TRUTH),
                                                   rel=2e-3)
    assert fit.predict_samples([1e9], [1e10]).shape == (200, 1)
    json.dumps(fit.to_dict(), allow_nan=False)


@pytest.mark.slow
def test_95_percent_intervals_cover_the_truth_at_about_the_nominal_rate() -> None:
    """20 seeded draws per law, 1% noise per run: each parameter's interval holds the truth
    in at least 80% of draws (nominal 95%; 20 draws leave a binomial spread of ~5%)."""
    draws = 20
    n, d = chinchilla_design()
    cover = dict.fromkeys(CHINCHILLA_TRUTH, 0)
    for seed in range(draws):
        fit = fit_chinchilla_law(n, d, noisy(chinchilla_loss(n, d, **CHINCHILLA_TRUTH), 0.01, seed),
                                 n_boot=200, seed=seed)
        for name, truth in CHINCHILLA_TRUTH.items():
            low, high = fit.intervals[name]
            cover[name] += low <= truth <= high
    assert min(cover.values()) >= 0.8 * draws, cover
    n, d, u = repeated_design()
    cover = dict.fromkeys(MUENNIGHOFF, 0)
    for seed in range(draws):
        loss = noisy(data_constrained_loss(n, d, u, **MUENNIGHOFF), 0.01, seed)
        fit = fit_data_constrained_law(n, d, u, loss, n_boot=200, seed=seed)
        for name, truth in MUENNIGHOFF.items():
            low, high = fit.intervals[name]
            cover[name] += low <= truth <= high
    assert min(cover.values()) >= 0.8 * draws, cover


def test_data_constrained_law_recovers_the_decay_constants() -> None:
    n, d, u = repeated_design()
    loss = noisy(data_constrained_loss(n, d, u, **MUENNIGHOFF), 0.003, 0)
    fit = fit_data_constrained_law(n, d, u, loss, n_boot=100, seed=0)
    assert fit.params["R_D"] == pytest.approx(15.4, rel=0.15)
    assert fit.params["R_N"] == pytest.approx(5.3, rel=0.15)
    low, high = fit.intervals["R_D"]
    assert low < 15.4 < high
    assert fit.identifiable, fit.warnings


def test_fixed_parameters_stay_fixed_the_two_stage_fit() -> None:
    """Muennighoff's procedure: the base law held, only the decay constants fitted."""
    n, d, u = repeated_design()
    loss = noisy(data_constrained_loss(n, d, u, **MUENNIGHOFF), 0.003, 2)
    base = {k: MUENNIGHOFF[k] for k in ("E", "A", "B", "alpha", "beta")}
    fit = fit_data_constrained_law(n, d, u, loss, fixed=base, n_boot=100, seed=0)
    for name, value in base.items():
        assert fit.params[name] == pytest.approx(value, rel=1e-9)
    assert set(fit.intervals) == {"R_D", "R_N"}
    assert fit.params["R_D"] == pytest.approx(15.4, rel=0.1)
    assert fit.sample("E") == pytest.approx(np.full(100, 1.87), rel=1e-9)


# --- ill-posed designs and bad input ----------------------------------------------------------

def test_no_repetition_leaves_the_decay_constant_unidentified() -> None:
    n, d = chinchilla_design()
    u = d.copy()  # every run sees each token once
    fit = fit_data_constrained_law(n, d, u, data_constrained_loss(n, d, u, **MUENNIGHOFF))
    assert not fit.identified["R_D"]
    assert any("no point repeats its data" in w for w in fit.warnings)
    assert not fit.identifiable


def test_two_sizes_cannot_identify_the_parameter_exponent() -> None:
    n, d = chinchilla_design()
    keep = n <= np.unique(n)[1]
    fit = fit_chinchilla_law(n[keep], d[keep], chinchilla_loss(n[keep], d[keep], **CHINCHILLA_TRUTH))
    assert not fit.identified["alpha"] and not fit.identified["A"]
    assert any("only 2 distinct N values" in w for w in fit.warnings)


def test_a_narrow_design_and_few_points_warn() -> None:
    n = np.array([1e8, 1.5e8, 2e8, 3e8, 1e8, 2e8, 3e8])
    d = np.array([1e9, 2e9, 4e9, 8e9, 4e9, 1e9, 2e9])
    fit = fit_chinchilla_law(n, d, chinchilla_loss(n, d, **CHINCHILLA_TRUTH))
    assert any("N spans 0.48 decades" in w for w in fit.warnings)
    assert any("residual degrees of freedom" in w for w in fit.warnings)


def test_sizes_and_tokens_that_grow_together_cannot_separate_the_two_terms() -> None:
    """Every run at 20 tokens per parameter, with alpha = beta: A / N^alpha and B / D^beta are
    then one power of N, and only their sum is determined."""
    n = np.geomspace(1e7, 1e9, 12)
    base = {k: MUENNIGHOFF[k] for k in CHINCHILLA.params}
    fit = fit_chinchilla_law(n, 20 * n, noisy(chinchilla_loss(n, 20 * n, **base), 0.002, 0),
                             n_boot=100)
    assert not fit.identifiable
    assert not fit.identified["alpha"] and not fit.identified["A"]
    assert any("disagree" in w or "bound" in w for w in fit.warnings)


@pytest.mark.parametrize(("args", "message"), [
    (([1e8, 2e8], [1e9, 2e9, 3e9], [3.0, 2.9]), "differ in length"),
    (([1e8, -2e8, 3e8], [1e9, 2e9, 3e9], [3.0, 2.9, 2.8]), "n_params must be positive"),
    (([1e8, 2e8, 3e8], [1e9, np.nan, 3e9], [3.0, 2.9, 2.8]), "tokens contains NaN"),
    (([1e8, 2e8, 3e8], [1e9, 2e9, 3e9], [3.0, 2.9, 2.8]), "3 points for 5 free parameters"),
    (([], [], []), "no points"),
])
def test_bad_points_are_one_line_errors(args: tuple, message: str) -> None:
    with pytest.raises(FitInputError, match=message):
        fit_chinchilla_law(*args)


def test_bad_fixed_values_are_refused() -> None:
    n, d = chinchilla_design()
    loss = chinchilla_loss(n, d, **CHINCHILLA_TRUTH)
    with pytest.raises(FitInputError, match="'R_D' is not a parameter of the chinchilla law"):
        fit_chinchilla_law(n, d, loss, fixed={"R_D": 3.0})
    with pytest.raises(FitInputError, match="A needs its exponent alpha fixed too"):
        fit_chinchilla_law(n, d, loss, fixed={"A": 400.0})
    with pytest.raises(FitInputError, match="E must be a positive number"):
        fit_chinchilla_law(n, d, loss, fixed={"E": -1.0})


# --- lack of fit ------------------------------------------------------------------------------

def test_a_one_variable_law_in_epochs_on_data_constrained_losses_is_flagged() -> None:
    """The new user's case: the power law in epochs fits, identifies E, and its interval
    excludes the true plateau; the noise check says the form is wrong."""
    epochs = np.array([1, 2, 4, 8, 16, 32, 64, 128.0])
    u, n = 1e8, 5e7
    truth = data_constrained_loss(n, u * epochs, u, **MUENNIGHOFF)
    plateau = data_constrained_loss(n, u * 1e9, u, **MUENNIGHOFF)
    loss = truth + np.random.default_rng(0).normal(0, 0.005, epochs.size)
    fit = fit_power_law(epochs, loss, n_boot=200, noise=0.005)
    low, high = fit.intervals["E"]
    assert not low <= plateau <= high  # the interval alone would mislead
    assert fit.misspecified
    assert any(w.startswith("lack of fit: residuals") for w in fit.warnings)
    # the right law on the same points passes
    right = fit_data_constrained_law(np.full(8, n), u * epochs, np.full(8, u), loss, noise=0.005,
                                     fixed={k: MUENNIGHOFF[k] for k in ("A", "B", "alpha", "beta")})
    assert not right.lack_of_fit.detected


def test_replicated_points_give_the_pure_error_test() -> None:
    x = np.repeat(np.geomspace(1, 1000, 6), 3)
    rng = np.random.default_rng(1)
    good = fit_power_law(x, 2.0 / x**0.5 + 1.5 + rng.normal(0, 0.003, x.size))
    assert any(t == "replicates" for t, _, _ in good.lack_of_fit.tests)
    assert not good.misspecified
    bent = 2.0 / x**0.5 + 1.5 + 0.05 * np.sin(np.log(x)) + rng.normal(0, 0.003, x.size)
    assert fit_power_law(x, bent).misspecified


def test_without_noise_or_replicates_few_points_are_not_tested() -> None:
    x = np.geomspace(1, 1000, 5)
    fit = fit_power_law(x, 2.0 / x**0.5 + 1.5)
    assert "lack of fit not tested" in fit.lack_of_fit.message
    assert not fit.misspecified


# --- allocation -------------------------------------------------------------------------------

def test_the_joint_law_frontier_is_the_closed_form_and_the_brute_force_optimum() -> None:
    n, d = chinchilla_design()
    fit = fit_chinchilla_law(n, d, chinchilla_loss(n, d, **CHINCHILLA_TRUTH), n_boot=50)
    compute = 1e21
    best = optimal_allocation(fit, compute)
    p = fit.params
    g = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / (p["alpha"] + p["beta"]))
    assert best.n_params.value == pytest.approx(
        g * (compute / 6) ** (p["beta"] / (p["alpha"] + p["beta"])), rel=1e-9)
    sizes = np.geomspace(1e7, 1e11, 20001)
    losses = fit.predict(sizes, compute / (6 * sizes))
    assert best.n_params.value == pytest.approx(sizes[np.argmin(losses)], rel=2e-3)
    assert best.tokens.value == pytest.approx(compute / 6 / best.n_params.value)
    assert best.n_params.has_interval and best.epochs is None


def test_the_data_limited_optimum_matches_a_dense_search_and_trains_longer_than_one_epoch() -> None:
    n, d, u = repeated_design()
    fit = fit_data_constrained_law(n, d, u, data_constrained_loss(n, d, u, **MUENNIGHOFF),
                                   n_boot=50)
    compute, unique = 1e21, 1e9
    best = optimal_allocation(fit, compute, unique_tokens=unique)
    sizes = np.geomspace(1e6, 1e12, 200001)
    losses = fit.predict(sizes, compute / (6 * sizes), unique)
    assert best.n_params.value == pytest.approx(sizes[np.argmin(losses)], rel=1e-3)
    assert best.loss.value == pytest.approx(losses.min(), abs=1e-9)
    assert best.epochs.value == pytest.approx(best.tokens.value / unique)
    assert best.epochs.value > 1
    with pytest.raises(ValueError, match="needs unique_tokens"):
        optimal_allocation(fit, compute)
    with pytest.raises(ValueError, match="compute must be a positive"):
        optimal_allocation(fit, -1.0, unique_tokens=unique)

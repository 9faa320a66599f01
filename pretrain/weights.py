"""Reading the files a model is made of (safetensors weights, JSON configs), each failure a
one-line error that names the file, says what is wrong with it, and what to do.

safetensors' own errors ("Error while deserializing header: header too small") name no file;
every reader of weights in pretrain/ and eval/ goes through ``read_weights``, and of a
model's JSON config through ``read_json_file``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch-free at import: hfconfig (and so study loading) reads configs here
    import torch

REWRITE = "it is damaged or incomplete"


class WeightsError(ValueError):
    """A weights or config file that cannot be read (a ValueError: one line, exit 2)."""


def read_weights(path: str | Path, fix: str = "") -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, on the CPU; ``fix`` says how to get a good file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as e:
        reason = " ".join(str(e).split())
        raise WeightsError(f"{path} is not a readable safetensors file ({reason}): {REWRITE}"
                           f"{'; ' + fix if fix else ''}") from None


def load_into(model: torch.nn.Module, weights: dict[str, torch.Tensor], path: str | Path, what: str) -> None:
    """``model.load_weights(weights)``; a file whose tensors are another model's (missing or
    unexpected names, other shapes) is a one-line error naming it."""
    try:
        model.load_weights(weights)  # type: ignore[operator]
    except (RuntimeError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WeightsError(f"{path} does not hold the weights of {what} ({first.rstrip(':.')})") from None


def read_json_file(path: str | Path, what: str, fix: str = "") -> Any:
    """A JSON file's content; unreadable or invalid JSON is a one-line error naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise WeightsError(f"{path} is not valid JSON ({e}): {what} is damaged{'; ' + fix if fix else ''}") from None

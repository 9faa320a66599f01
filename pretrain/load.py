"""Load a finished training run's model for evaluation, sampling or distillation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from pretrain.hfconfig import shape_from_hf_config
from pretrain.model import Llama
from pretrain.rundir import RunDir
from pretrain.sizes import ModelShape
from pretrain.spec import BASE_CONFIG, TrainSpec
from pretrain.store import TokenStore
from pretrain.tokenizer import sha256_file
from pretrain.weights import load_into, read_json_file, read_weights

# Run kinds that end in a model: pretraining runs and distillation students (whose
# spec extends TrainSpec with teacher fields; the TrainSpec part says how to build it).
MODEL_KINDS = ("train", "distill")


class RunNotReadyError(ValueError):
    """The run directory has no finished model (not trained, failed, or not a run)."""


@dataclass(frozen=True)
class TrainedRun:
    """A finished run: its spec, its store, and where its weights are."""

    path: Path
    spec: TrainSpec
    store: TokenStore
    weights: Path
    run_id: str
    """The run's own id (a student's differs from that of its training fields alone)."""

    @property
    def weights_sha256(self) -> str:
        return sha256_file(self.weights)

    @property
    def shape(self) -> ModelShape:
        """The trained architecture. A continued run's is the base config it trained with,
        saved beside its weights, not whatever the base directory holds now."""
        saved = self.path / BASE_CONFIG
        if saved.is_file():
            return shape_from_hf_config(read_json_file(saved, "the run's base config", self.retrain),
                                        name=self.spec.size)
        return self.spec.shape(self.store.vocab_size)

    @property
    def retrain(self) -> str:
        """What to do about a damaged file of this run."""
        return f"train the run again (remove {self.path}, then launch or dcsl train it again)"

    def read_weights(self) -> dict[str, torch.Tensor]:
        """The run's tensors (CPU); a damaged file is a one-line error naming it."""
        return read_weights(self.weights, self.retrain)

    def load_model(self, device: str | torch.device = "cpu", max_seq_len: int | None = None) -> Llama:
        """The model in eval mode; weights load with safetensors (no pickle)."""
        shape = self.shape
        model = Llama(shape, max_seq_len=max_seq_len or self.spec.seq_len)
        load_into(model, self.read_weights(), self.weights, f"its run's {shape.name} model")
        return model.to(device).eval()


def open_run(path: str | Path) -> TrainedRun:
    """A succeeded training run directory; one-line errors for anything else."""
    run = RunDir(path)
    spec_json = run.spec()
    if spec_json is None:
        raise RunNotReadyError(f"{run.path} is not a run directory (no spec.json)")
    if spec_json.get("kind") not in MODEL_KINDS:
        raise RunNotReadyError(f"{run.path} is a {spec_json.get('kind')!r} run, not a trained model")
    state = run.status().get("state")
    weights = run.path / "model.safetensors"
    if state != "succeeded" or not weights.is_file():
        raise RunNotReadyError(f"{run.path} has not finished training (state: {state})")
    spec = TrainSpec.from_json(spec_json)
    store = TokenStore(spec.store)
    if spec.store_id and store.store_id != spec.store_id:
        # Same path, different data or tokenizer: the model's token ids would mean other things.
        raise ValueError(f"{run.path} was trained on store {spec.store_id}, but {spec.store} now holds "
                         f"store {store.store_id}")
    return TrainedRun(path=run.path, spec=spec, store=store, weights=weights, run_id=spec_json["id"])


def resolve_device(name: str = "auto") -> torch.device:
    """A torch device from a spec's device field: "auto" is cuda when available, else cpu."""
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)

"""Cluster profiles: where and how sweep runs are submitted with submitit.

A profile is a small YAML file (``slurm/profiles/<name>.yaml`` ships ``local`` and
``example-gpu``) describing the Slurm resources of *one run*. The same study file
drives a laptop, the single-node test cluster and a GPU cluster; only the profile
changes.

    profile = load_profile("local")            # or load_profile("site/my-cluster.yaml")
    executor = make_executor(profile, "runs/_submitit")
    jobs = executor.map_array(train_one, specs)

Preemption and time limits: every job is submitted with ``--requeue`` and
``--signal=USR2@<signal_delay_s>``. Slurm sends USR2 that many seconds before the
time limit (and on preemption where the site sets
``PreemptParameters=send_user_signal``; ``job._interrupt()`` or
``scancel --signal=USR2 <jobid>`` do the same by hand). submitit's handler in the job
calls the callable's ``checkpoint()``, pickles what it returns and runs
``scontrol requeue <jobid>``; the requeued job resumes from that pickle.

This module imports no torch/lightning: it is imported by CLIs and tests that must
start fast. submitit is imported lazily, in :func:`make_executor` only.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import re
import subprocess
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import submitit

__all__ = [
    "ClusterProfile",
    "available_profiles",
    "chunk_for_array",
    "load_profile",
    "make_executor",
    "max_array_size",
]

T = TypeVar("T")

# Values an sbatch option may take in ``additional_parameters`` (True: a bare flag).
SbatchValue = str | int | float | bool


@dataclass(frozen=True)
class ClusterProfile:
    """Slurm resources for one run, and how many runs of a sweep go at once."""

    name: str
    """Profile name: the YAML file's stem unless the file sets ``name``."""

    partition: str | None = None
    """Slurm partition (``--partition``); None uses the cluster's default partition."""

    account: str | None = None
    """Account to charge (``--account``); None when the site needs none."""

    qos: str | None = None
    """Quality of service (``--qos``); None for the site default."""

    gpus_per_run: int = field(default=0, metadata={"min": 0})
    """GPUs per node of one run (``--gpus-per-node``); 0 for CPU-only runs."""

    nodes_per_run: int = field(default=1, metadata={"positive": True})
    """Nodes that train one run together (``--nodes``)."""

    tasks_per_node: int = field(default=0, metadata={"min": 0})
    """Processes of one run on each node (``--ntasks-per-node``), one per rank; 0: one per GPU
    (one without GPUs). A run's world size is nodes_per_run x this; the study's
    ``training.devices`` and ``training.nodes`` must say the same."""

    cpus_per_run: int = field(default=1, metadata={"positive": True})
    """CPU cores per process of a run (``--cpus-per-task``)."""

    mem_gb: float = field(default=4.0, metadata={"positive": True})
    """Host memory per run in GB (``--mem``)."""

    gpu_memory_gb: float = field(default=0.0, metadata={"min": 0})
    """Memory of one GPU in GB: ``sweep plan`` estimates each size's need against it and picks
    micro-batches that fit (0: not said, no check)."""

    time_min: int = field(default=60, metadata={"positive": True})
    """Wall-clock limit per job in minutes (``--time``); longer runs checkpoint and requeue."""

    array_parallelism: int = field(default=16, metadata={"positive": True})
    """Most array tasks of one submission running at once (the ``%N`` of ``--array``)."""

    setup: tuple[str, ...] = ()
    """Shell lines run in the batch script before the run (``module load``, venv activation)."""

    signal_delay_s: int = field(default=120, metadata={"positive": True})
    """Seconds before the time limit at which Slurm sends USR2 so the run can checkpoint."""

    additional_parameters: Mapping[str, SbatchValue] = field(
        default_factory=lambda: types.MappingProxyType({}), hash=False
    )
    """Further sbatch options as ``{"constraint": "a100"}``; True stands for a bare flag."""

    source: str = field(default="", compare=False)
    """File the profile was read from (for error messages); empty when built in code."""

    @property
    def ranks_per_node(self) -> int:
        return self.tasks_per_node or max(1, self.gpus_per_run)

    @property
    def gpus_per_job(self) -> int:
        """GPUs one run holds, over all its nodes (what GPU-hours are counted in)."""
        return self.gpus_per_run * self.nodes_per_run

    def submitit_parameters(self) -> dict[str, Any]:
        """Keyword arguments for ``submitit.AutoExecutor.update_parameters``.

        ``--requeue`` is always set: submitit requeues a signalled job with
        ``scontrol requeue``, which Slurm refuses ("presently disabled") for a job
        submitted with requeue off, the default where ``JobRequeue=0``.
        """
        params: dict[str, Any] = {
            "nodes": self.nodes_per_run,
            "tasks_per_node": self.ranks_per_node,
            "cpus_per_task": self.cpus_per_run,
            "mem_gb": self.mem_gb,
            "timeout_min": self.time_min,
            "slurm_array_parallelism": self.array_parallelism,
            "slurm_setup": list(self.setup),
            "slurm_signal_delay_s": self.signal_delay_s,
            "slurm_additional_parameters": {"requeue": True, **self.additional_parameters},
        }
        if self.ranks_per_node * self.nodes_per_run > 1:
            # One task failing a run ends them all, not left waiting in a collective.
            params["slurm_srun_args"] = ["--kill-on-bad-exit=1"]
        # Omitted when 0, so a CPU run's batch script carries no GPU option at all.
        if self.gpus_per_run > 0:
            params["gpus_per_node"] = self.gpus_per_run
        for key, value in (
            ("slurm_partition", self.partition),
            ("slurm_account", self.account),
            ("slurm_qos", self.qos),
        ):
            if value is not None:
                params[key] = value
        return params


# Keys a profile file must set (the rest have their dataclass defaults).
_REQUIRED = ("gpus_per_run", "cpus_per_run", "mem_gb", "time_min")
_FILE_KEYS = tuple(f.name for f in dataclasses.fields(ClusterProfile) if f.name != "source")


def _profiles_dir() -> Path:
    # The YAML files are package data of the installed `slurm` package.
    return Path(str(importlib.resources.files("slurm") / "profiles"))


def available_profiles() -> list[str]:
    """Names of the profiles shipped in ``slurm/profiles/``."""
    return sorted(p.stem for p in _profiles_dir().glob("*.yaml"))


def _resolve(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    looks_like_path = (
        isinstance(name_or_path, Path) or "/" in text or text.endswith((".yaml", ".yml"))
    )
    if looks_like_path:
        path = Path(text).expanduser()
        if not path.is_file():
            raise ValueError(f"cluster profile file not found: {path}")
        return path
    path = _profiles_dir() / f"{text}.yaml"
    if not path.is_file():
        raise ValueError(
            f"unknown cluster profile {text!r}; shipped profiles: "
            f"{', '.join(available_profiles())} (or give a path to a .yaml file)"
        )
    return path


def load_profile(name_or_path: str | Path) -> ClusterProfile:
    """Load and validate a cluster profile.

    A bare name (``"local"``) resolves to ``slurm/profiles/<name>.yaml`` in the installed
    package; anything with a ``/`` or a ``.yaml``/``.yml`` suffix is a file path. Every
    problem (an unknown or missing key, a wrong type, a non-positive number) is a one-line
    ``ValueError`` with the key's ``file:line:col``, read by the same schema reader as study
    files (``sweeps.study.schema``).
    """
    from sweeps.study.schema import build, read
    from sweeps.study.yamlpos import Section, load_yaml

    path = _resolve(name_or_path)
    data, pos = load_yaml(path, what="cluster profile")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a profile must be a mapping of keys to values, got {type(data).__name__}")
    sec = Section(data, (), pos)
    values = {"name": path.stem, **read(sec, ClusterProfile, only=_FILE_KEYS, required=_REQUIRED,
                                        what="profile key"), "source": str(path)}
    profile = build(sec, ClusterProfile, values)
    if profile.signal_delay_s >= profile.time_min * 60:
        raise pos.error(("signal_delay_s",), f"must be shorter than time_min ({profile.time_min} min), "
                                              f"got {profile.signal_delay_s} s")
    return profile


def make_executor(
    profile: ClusterProfile | str | Path, folder: str | Path
) -> submitit.AutoExecutor:
    """A ``submitit.AutoExecutor`` for Slurm, configured from ``profile``.

    ``folder`` receives submitit's pickles and logs (``%j`` is allowed). Use a fresh
    folder per cluster lifetime: a wiped cluster restarts job ids at 1, and submitit
    would read an old job's result file.
    """
    import submitit  # lazy: keeps `import sweeps.study.profiles` cheap

    if not isinstance(profile, ClusterProfile):
        profile = load_profile(profile)
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    executor.update_parameters(**profile.submitit_parameters())
    return executor


_MAX_ARRAY_RE = re.compile(r"^\s*MaxArraySize\s*=\s*(\d+)\s*$", re.MULTILINE)


def max_array_size(env: Mapping[str, str] | None = None) -> int:
    """The cluster's ``MaxArraySize`` from ``scontrol show config``.

    An array may hold at most this many tasks (indices ``0..MaxArraySize-1``).
    ``env`` replaces the environment of the ``scontrol`` call (e.g. to set
    ``SLURM_CONF``); by default the current one is used.
    """
    try:
        proc = subprocess.run(
            ["scontrol", "show", "config"],
            capture_output=True,
            text=True,
            timeout=30,
            env=dict(env) if env is not None else None,
        )
    except FileNotFoundError:
        raise RuntimeError(
            "scontrol not found on PATH: reading MaxArraySize needs the Slurm client tools"
        ) from None
    except subprocess.TimeoutExpired:
        raise RuntimeError("scontrol show config timed out after 30 s: is slurmctld up?") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"scontrol show config failed (exit {proc.returncode}): {last}")
    match = _MAX_ARRAY_RE.search(proc.stdout)
    if match is None:
        raise RuntimeError("scontrol show config printed no MaxArraySize line")
    return int(match.group(1))


def chunk_for_array(items: Sequence[T], max_array_size: int) -> list[list[T]]:
    """Split ``items`` into consecutive chunks of at most ``max_array_size`` each.

    Each chunk can be one job array. Order is kept; an empty input gives no chunks.
    """
    if isinstance(max_array_size, bool) or not isinstance(max_array_size, int):
        raise TypeError(f"max_array_size must be an int, got {max_array_size!r}")
    if max_array_size < 1:
        raise ValueError(f"max_array_size must be at least 1, got {max_array_size}")
    items = list(items)
    return [items[i : i + max_array_size] for i in range(0, len(items), max_array_size)]

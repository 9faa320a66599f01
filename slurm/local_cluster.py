"""A real single-node Slurm cluster on this machine, for tests and local sweeps.

Thin wrapper around ``slurm/local/{install,start,stop}.sh`` (see their headers for
the layout and the environment knobs). Needs root: slurmd runs jobs as their users
and munged must run as user munge.

    with LocalSlurmCluster("/tmp/dcsl-slurm") as cluster:
        # os.environ["SLURM_CONF"] now points at the cluster, so sbatch/squeue/sacct
        # and submitit (which calls them with os.environ) talk to it.
        print(cluster.max_array_size())
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

__all__ = ["LocalSlurmCluster", "SCRIPTS_DIR"]

SCRIPTS_DIR = Path(__file__).resolve().parent / "local"
"""Where install.sh, start.sh and stop.sh live (package data of ``slurm``)."""

_MAX_ARRAY_RE = re.compile(r"^\s*MaxArraySize\s*=\s*(\d+)\s*$", re.MULTILINE)


def _run_script(
    name: str, *args: str, timeout: float, extra_env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    # Through bash, not the file's exec bit: package data may be installed without it.
    return subprocess.run(
        ["bash", str(SCRIPTS_DIR / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(extra_env or {})},
    )


def _script_error(name: str, proc: subprocess.CompletedProcess[str]) -> RuntimeError:
    output = (proc.stderr + proc.stdout).strip()
    first = next((ln for ln in output.splitlines() if "FAILED" in ln or "timed out" in ln), "")
    summary = f"slurm/local/{name} failed (exit {proc.returncode})" + (
        f": {first}" if first else ""
    )
    return RuntimeError(f"{summary}\n{output[-4000:]}")


class LocalSlurmCluster:
    """Start/stop a single-node Slurm cluster whose whole state lives in ``state_dir``.

    Args:
        state_dir: folder for configs, spool, pids, logs, munge and MariaDB data.
            Every parent must be traversable by user ``munge`` (a folder under /tmp is).
        set_environ: while the cluster is started, set ``os.environ["SLURM_CONF"]``
            (restored on stop). submitit runs sbatch/squeue/sacct with os.environ, so
            this is what makes it use this cluster.
        start_timeout_s: seconds allowed for start.sh as a whole.
        script_env: extra environment for start.sh, e.g. ports
            (``DCSL_SLURMCTLD_PORT``, ``DCSL_SLURMD_PORT``, ``DCSL_SLURMDBD_PORT``,
            ``DCSL_MARIADB_PORT``) or ``DCSL_SLURM_MAX_ARRAY_SIZE``.
    """

    def __init__(
        self,
        state_dir: str | Path,
        *,
        set_environ: bool = True,
        start_timeout_s: float = 300.0,
        script_env: Mapping[str, str] | None = None,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.set_environ = set_environ
        self.start_timeout_s = start_timeout_s
        self.script_env = dict(script_env or {})
        self._slurm_conf: Path | None = None
        self._saved_environ: tuple[bool, str | None] | None = None

    # ------------------------------------------------------------------ lifecycle
    @staticmethod
    def install(timeout_s: float = 900.0) -> None:
        """Install the Debian packages if any is missing (root; quick no-op otherwise)."""
        proc = _run_script("install.sh", timeout=timeout_s)
        if proc.returncode != 0:
            raise _script_error("install.sh", proc)

    def start(self) -> Path:
        """Start (or restart) the cluster and wait until its node is idle.

        Returns the ``slurm.conf`` path; also sets ``os.environ["SLURM_CONF"]`` if
        ``set_environ``. Raises RuntimeError with the daemons' log tails on failure.
        """
        self.state_dir.mkdir(parents=True, exist_ok=True)
        proc = _run_script(
            "start.sh", str(self.state_dir), timeout=self.start_timeout_s, extra_env=self.script_env
        )
        if proc.returncode != 0:
            raise _script_error("start.sh", proc)
        lines = proc.stdout.strip().splitlines()
        if not lines or not Path(lines[-1]).is_file():
            raise RuntimeError(f"start.sh did not print a slurm.conf path; stdout: {proc.stdout!r}")
        self._slurm_conf = Path(lines[-1])
        if self.set_environ and self._saved_environ is None:
            old = os.environ.get("SLURM_CONF")
            self._saved_environ = ("SLURM_CONF" in os.environ, old)
            os.environ["SLURM_CONF"] = str(self._slurm_conf)
        return self._slurm_conf

    def stop(self) -> None:
        """Stop the daemons (by their pid files) and restore ``SLURM_CONF``.

        Safe to call twice, or on a cluster that never started.
        """
        try:
            if self.state_dir.is_dir():
                proc = _run_script("stop.sh", str(self.state_dir), timeout=180)
                if proc.returncode != 0:
                    raise _script_error("stop.sh", proc)
        finally:
            self._slurm_conf = None
            if self._saved_environ is not None:
                had, old = self._saved_environ
                self._saved_environ = None
                if had and old is not None:
                    os.environ["SLURM_CONF"] = old
                else:
                    os.environ.pop("SLURM_CONF", None)

    def __enter__(self) -> LocalSlurmCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ clients
    @property
    def slurm_conf(self) -> Path:
        """Path of the running cluster's slurm.conf."""
        if self._slurm_conf is None:
            raise RuntimeError(f"local Slurm cluster in {self.state_dir} is not started")
        return self._slurm_conf

    @property
    def env(self) -> dict[str, str]:
        """Environment for Slurm clients: a copy of os.environ with SLURM_CONF set."""
        return {**os.environ, "SLURM_CONF": str(self.slurm_conf)}

    @property
    def log_dir(self) -> Path:
        """Folder with slurmctld.log, slurmd.log, slurmdbd.log, mariadb.log."""
        return self.state_dir / "log"

    def run_client(self, *args: str, timeout_s: float = 30.0) -> str:
        """Run a Slurm client command (``scontrol``, ``squeue``...) against this cluster.

        Returns stdout; raises RuntimeError with stderr's last line on failure.
        """
        proc = subprocess.run(
            list(args), capture_output=True, text=True, env=self.env, timeout=timeout_s
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"{' '.join(args)} failed (exit {proc.returncode}): {last}")
        return proc.stdout

    def max_array_size(self) -> int:
        """``MaxArraySize`` from ``scontrol show config``."""
        match = _MAX_ARRAY_RE.search(self.run_client("scontrol", "show", "config"))
        if match is None:
            raise RuntimeError("scontrol show config printed no MaxArraySize line")
        return int(match.group(1))

    def __repr__(self) -> str:
        state = "started" if self._slurm_conf is not None else "stopped"
        return f"LocalSlurmCluster({str(self.state_dir)!r}, {state})"

"""Pytest fixture: a real single-node Slurm cluster for the whole test session.

Use it from conftest.py with ``from slurm_cluster import slurm_cluster  # noqa: F401``
and request ``slurm_cluster`` in tests (mark them ``@pytest.mark.slurm``). While the
session runs, ``os.environ["SLURM_CONF"]`` points at the cluster, so submitit, sbatch,
squeue and sacct all talk to it.

The fixture installs the Debian packages when missing (slurm/local/install.sh), starts
the daemons in a fresh /tmp/dcsl-slurm-* folder on free ports, and stops them at the
end of the session, on failure, at interpreter exit and on SIGTERM. It skips only when
it cannot work at all: not root, or Slurm missing and no apt-get to install it.
The state folder (daemon logs) is kept when a test failed, or with
DCSL_KEEP_SLURM_STATE=1.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from slurm.local_cluster import SCRIPTS_DIR, LocalSlurmCluster

__all__ = ["slurm_cluster"]

_STATE_PREFIX = "dcsl-slurm-"
_OWNER_FILE = "owner.pid"
_SLURM_BINARIES = ("slurmctld", "slurmd", "slurmdbd", "munged", "mariadbd", "sbatch")


def _free_ports(count: int) -> list[int]:
    # Bind them all at once so the kernel hands out distinct ports; another pytest
    # session on this machine then gets its own cluster instead of a port clash.
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reap_stale_clusters(tmp_root: Path) -> None:
    """Stop clusters left by earlier sessions of this fixture that died (SIGKILL).

    Only folders whose owner pid is gone are touched, so a concurrent session's
    cluster is left alone; stop.sh only signals pids from the folder's pid files.
    """
    for owner in tmp_root.glob(f"{_STATE_PREFIX}*/{_OWNER_FILE}"):
        try:
            pid = int(owner.read_text().strip())
        except (OSError, ValueError):
            continue
        if _pid_alive(pid):
            continue
        LocalSlurmCluster(owner.parent, set_environ=False).stop()
        shutil.rmtree(owner.parent, ignore_errors=True)


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "the local Slurm cluster needs root (apt install, slurmd runs jobs as their users)"
    installed = all(shutil.which(b) for b in _SLURM_BINARIES)
    if not installed and shutil.which("apt-get") is None:
        return "Slurm is not installed and apt-get is unavailable to install it"
    return None


@pytest.fixture(scope="session")
def slurm_cluster(request: pytest.FixtureRequest) -> Iterator[LocalSlurmCluster]:
    """A started LocalSlurmCluster; SLURM_CONF is set in os.environ while it runs."""
    reason = _skip_reason()
    if reason is not None:
        pytest.skip(reason)
    try:
        LocalSlurmCluster.install()
    except RuntimeError as err:
        pytest.fail(f"installing Slurm with {SCRIPTS_DIR / 'install.sh'} failed: {err}")

    # Under /tmp, not pytest's tmp_path: munged runs as user munge and must traverse
    # every parent (pytest's are 0700), and unix socket paths must stay short.
    tmp_root = Path(tempfile.gettempdir())
    _reap_stale_clusters(tmp_root)
    state_dir = Path(tempfile.mkdtemp(prefix=_STATE_PREFIX, dir=tmp_root))
    (state_dir / _OWNER_FILE).write_text(f"{os.getpid()}\n")
    ctld, slurmd, dbd, db = _free_ports(4)
    cluster = LocalSlurmCluster(
        state_dir,
        script_env={
            "DCSL_SLURMCTLD_PORT": str(ctld),
            "DCSL_SLURMD_PORT": str(slurmd),
            "DCSL_SLURMDBD_PORT": str(dbd),
            "DCSL_MARIADB_PORT": str(db),
        },
    )

    # A session that dies without running fixture teardown (Ctrl-C twice, an
    # exception in pytest itself, SIGTERM from CI) must not leave daemons behind.
    atexit.register(cluster.stop)
    previous_sigterm = signal.getsignal(signal.SIGTERM)

    def _on_sigterm(signum: int, frame: FrameType | None) -> None:
        # SystemExit unwinds through the fixture's finally and then atexit.
        sys.exit(128 + signum)

    if previous_sigterm in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _on_sigterm)

    ok = False
    try:
        try:
            cluster.start()
        except RuntimeError as err:
            pytest.fail(f"starting the local Slurm cluster in {state_dir} failed: {err}")
        yield cluster
        ok = True
    finally:
        try:
            cluster.stop()
        finally:
            atexit.unregister(cluster.stop)
            if signal.getsignal(signal.SIGTERM) is _on_sigterm:
                signal.signal(signal.SIGTERM, previous_sigterm or signal.SIG_DFL)
            # Keep the daemons' logs when anything failed; they explain stuck jobs.
            failed = not ok or request.session.testsfailed > 0
            if failed or os.environ.get("DCSL_KEEP_SLURM_STATE"):
                print(f"\nlocal Slurm cluster state and logs kept in {state_dir}", file=sys.stderr)
            else:
                shutil.rmtree(state_dir, ignore_errors=True)

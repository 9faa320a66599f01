"""Run liveness: the lock where it works, the heartbeat where it does not."""

import errno
import fcntl
import os
import socket
import time

import pytest

from sweeps.runs import runstore
from sweeps.runs.runstore import HEARTBEAT, claim, is_alive


def beat_from(run_dir, host, age_s):
    """A heartbeat as a process on ``host`` left it ``age_s`` seconds ago."""
    path = run_dir / HEARTBEAT
    path.write_text(f"{host} 4242\n")
    then = time.time() - age_s
    os.utime(path, (then, then))


def test_a_claimed_run_is_alive_and_cannot_be_claimed_twice(tmp_path):
    run = tmp_path / "run"
    with claim(run) as mine:
        assert mine and is_alive(run)
        assert (run / HEARTBEAT).read_text().split()[0] == socket.gethostname()
        with claim(run) as again:
            assert not again
    assert not is_alive(run) and not (run / HEARTBEAT).exists()


def test_a_fresh_heartbeat_from_another_host_keeps_a_run_alive_when_its_lock_is_invisible(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").touch()  # free here: node-local locks do not show the other host's
    beat_from(run, "node-b", age_s=5)
    assert is_alive(run)
    with claim(run) as mine:
        assert not mine
    beat_from(run, "node-b", age_s=runstore.STALE_AFTER_S + 60)  # its holder died
    assert not is_alive(run)
    with claim(run) as mine:
        assert mine


def test_a_heartbeat_left_on_this_host_is_stale_at_once(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").touch()
    beat_from(run, socket.gethostname(), age_s=1)  # a SIGKILLed worker here: its lock went with it
    assert not is_alive(run)
    with claim(run) as mine:
        assert mine


def test_without_flock_the_heartbeat_alone_decides(tmp_path, monkeypatch):
    real = fcntl.flock

    def no_locks(fd, op):
        if op & fcntl.LOCK_EX:
            raise OSError(errno.ENOLCK, "No locks available")
        return real(fd, op)

    monkeypatch.setattr(runstore.fcntl, "flock", no_locks)
    run = tmp_path / "run"
    with claim(run) as mine:
        assert mine and is_alive(run)
        with claim(run) as again:
            assert not again  # same host, but without flock only the heartbeat says who works
    assert not is_alive(run)


def test_the_heartbeat_is_touched_while_the_run_is_claimed(tmp_path, monkeypatch):
    monkeypatch.setattr(runstore, "HEARTBEAT_S", 0.05)
    run = tmp_path / "run"
    with claim(run):
        old = time.time() - 1000
        os.utime(run / HEARTBEAT, (old, old))
        deadline = time.time() + 5
        while (run / HEARTBEAT).stat().st_mtime < time.time() - 100 and time.time() < deadline:
            time.sleep(0.02)
        assert time.time() - (run / HEARTBEAT).stat().st_mtime < 100


@pytest.mark.parametrize("age_s,alive", [(1, True), (1e6, False)])
def test_run_state_reads_liveness(tmp_path, age_s, alive):
    from pretrain.rundir import RunDir
    from sweeps.runs.runstore import run_state

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.write_spec({"kind": "train", "id": "x"})
    run.update_status(state="running")
    (run.path / ".lock").touch()
    beat_from(run.path, "node-b", age_s)
    assert run_state(run.path) == ("running" if alive else "stale")


RACER = """
import socket, sys, time
from pathlib import Path
from sweeps.runs import runstore
host, run = sys.argv[1], Path(sys.argv[2])
socket.gethostname = lambda: host
runstore.fcntl.flock = lambda fd, op: None  # node-local locks: always free as seen from here
move_aside = runstore._move_aside
runstore._move_aside = lambda *a: (time.sleep(0.5), move_aside(*a))[1]  # widen the race window
with runstore.claim(run) as mine:
    time.sleep(2.5 if mine else 0.5)  # the loser looks while the winner still works
    beat = (run / runstore.HEARTBEAT).read_text().split()[0] if (run / runstore.HEARTBEAT).exists() else "gone"
    print(mine, beat, flush=True)
"""


def test_two_hosts_taking_over_a_dead_run_at_once_get_one_claim(tmp_path, repo_root):
    import subprocess
    import sys

    script = tmp_path / "racer.py"
    script.write_text(RACER)
    run = tmp_path / "run"
    run.mkdir()
    beat_from(run, "node-dead", age_s=runstore.STALE_AFTER_S + 60)
    procs = [subprocess.Popen([sys.executable, str(script), host, str(run)], cwd=repo_root,
                              stdout=subprocess.PIPE, text=True) for host in ("node-a", "node-b")]
    outcomes = [p.communicate(timeout=60)[0].split() for p in procs]
    claimed = [host for host, (mine, _) in zip(("node-a", "node-b"), outcomes, strict=True) if mine == "True"]
    assert len(claimed) == 1, outcomes
    # The loser leaves the winner's heartbeat alone.
    assert all(beat == claimed[0] for _, beat in outcomes), outcomes

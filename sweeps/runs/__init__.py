"""The run store: one directory per run under a study's root, whose files are the truth about
it (state, claim and heartbeat, result), a ``Snapshot`` of all of them read at once with the
adaptive rounds of ``search.json``, and the registry of run kinds that specs are read back by.
"""

from sweeps.runs.kinds import KINDS, kind_of
from sweeps.runs.runstore import TABLE_STATES, claim, last_error, run_state, runs_dir
from sweeps.runs.snapshot import SEARCH_FILE, Snapshot, read_search, search_key

__all__ = [
    "KINDS", "SEARCH_FILE", "TABLE_STATES", "Snapshot", "claim", "kind_of", "last_error", "read_search",
    "run_state", "runs_dir", "search_key",
]

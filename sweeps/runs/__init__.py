"""The run store: one directory per run under a study's root, whose files are the truth about
it (state, claim and heartbeat, result), a ``Snapshot`` of all of them read at once with the
adaptive rounds of ``search.json``, and the registry of run kinds that specs are read back by.
"""

from sweeps.runs.index import INDEX_FILE, Index, read_index
from sweeps.runs.index import record as record_index
from sweeps.runs.kinds import KINDS, kind_of
from sweeps.runs.runstore import (
    RUN_STATES,
    claim,
    last_error,
    run_state,
    run_state_and_reason,
    runs_dir,
    set_aside,
)
from sweeps.runs.snapshot import SEARCH_FILE, Snapshot, read_search, run_id_of_dir, search_key

__all__ = [
    "INDEX_FILE", "KINDS", "RUN_STATES", "Index", "read_index", "record_index", "SEARCH_FILE", "Snapshot", "claim", "kind_of", "last_error", "read_search",
    "run_id_of_dir", "run_state", "run_state_and_reason", "runs_dir", "search_key", "set_aside",
]

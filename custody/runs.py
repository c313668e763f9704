"""The status of collection runs, as ``custody log`` shows it.

A run is told by its signed ``collection.start`` and ``collection.end`` events
(:func:`custody.collect.runs`).  Its status is the end event's (``complete``,
``failed``, ...); a run without one is ``running`` while its process still holds
the run lock, else ``unfinished`` (killed, crashed, unplugged: ``custody collect
--resume`` finishes it).
"""

from __future__ import annotations

from dataclasses import dataclass

from custody.collect import Run, runs, unfinished_runs
from custody.ledger import Ledger

RUNNING = "running"
UNFINISHED = "unfinished"


@dataclass(frozen=True)
class RunStatus:
    run: Run
    status: str  # the end event's status, RUNNING or UNFINISHED

    @property
    def unfinished(self) -> bool:
        return self.status == UNFINISHED


def run_statuses(ledger: Ledger) -> dict[str, RunStatus]:
    """Every collection run of the case by run id, in the order they started."""
    all_runs = runs(ledger)
    gone = {r.run for r in unfinished_runs(ledger, all_runs)}
    return {
        r.run: RunStatus(r, UNFINISHED if r.run in gone else r.status or RUNNING) for r in all_runs
    }

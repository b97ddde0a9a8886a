"""How the controller labels the outcome of applying an event (metrics and its stats)."""

from __future__ import annotations

from optscale.ports import Outcome

OUTCOME_LABELS = {
    Outcome.APPLIED: "applied",
    Outcome.DUPLICATE: "duplicate",
    Outcome.LATE: "late",
    Outcome.STALE: "stale",
    Outcome.FENCED: "fenced",
}
OUTCOME_STATS = {  # the worker's stats counter of each outcome other than applied
    Outcome.DUPLICATE: "duplicates",
    Outcome.LATE: "late",
    Outcome.STALE: "stale",
    Outcome.FENCED: "fenced",
}

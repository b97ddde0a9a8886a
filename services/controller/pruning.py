"""Prefix pruning for the controller's questions (issue 18.4, services path).

A question submitted with the option ``prune_z`` (and ``prune_min_steps``) sends a
:class:`~optscale.pruning.PruneSpec` with every ``Generate`` request: the rule, and the
reference — the count, mean and deviation of the final scores of the question's finished, not
pruned, samples *when the request is dispatched*. The generator service judges that request's
samples against it (llama.cpp, sim); a pruned sample comes back through the verifier as a
``Scored`` event with its prefix score, no answer and ``FINISH_REASON_PRUNED``, and enters the
loop as any scored sample (as in the embedded solver). A later dispatch carries the newer
reference; samples already decoding keep theirs (replay and the embedded solver refresh it at
every score).

The references live in this controller's memory. A question resumed after a failover starts
from the scores in its rebuilt loop, pruned prefixes included (the store does not record which
samples were pruned), until its next score.
"""

from __future__ import annotations

from optscale.pruning import PruneSpec, pruning_setting
from optscale.truncnorm import SuffStats
from optscale.v1 import common_pb2, events_pb2
from services.controller.ownership import OwnedQuestion

_MAX_QUESTIONS = 100_000


class PruneReferences:
    """Per question with ``prune_z``: the final scores of its finished, not pruned, samples."""

    def __init__(self) -> None:
        self.finished: dict[str, SuffStats] = {}

    def scored(self, o: OwnedQuestion, sc: events_pb2.Scored) -> None:
        """Record an applied score; call before the loop takes it (its state is the base of a
        question not seen here yet)."""
        if pruning_setting(o.config.options) is None:
            return
        q = o.question_id
        base = self.finished.pop(q, None)
        if base is None:
            base = o.loop.state.stats
        if sc.finish_reason != common_pb2.FINISH_REASON_PRUNED:
            base = base.add(sc.score)
        self.finished[q] = base  # re-inserted: most recent last
        if len(self.finished) > _MAX_QUESTIONS:
            del self.finished[next(iter(self.finished))]

    def spec(self, o: OwnedQuestion) -> PruneSpec | None:
        """What to send with the question's next ``Generate`` request (``None``: no pruning)."""
        rule = pruning_setting(o.config.options)
        if rule is None:
            return None
        return PruneSpec(rule, self.finished.get(o.question_id, o.loop.state.stats))

    def forget(self, question_id: str) -> None:
        self.finished.pop(question_id, None)

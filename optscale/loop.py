"""The one per-question sampling loop: a pure state machine that every driver runs.

The embedded solver (:mod:`optscale.solve`), replay (:mod:`optscale.replay`) and the
controller (``services/controller``) each hold one immutable :class:`QuestionLoop` per
question, feed it what happened and carry out the :class:`Action` it returns. Nothing else
decides what to dispatch or when to stop::

    loop = QuestionLoop.start(question_id, policy, seed=seed)
    action = loop.next_action()
    while not isinstance(action, Stop):
        if isinstance(action, Dispatch):
            start_generating(action)              # k samples: ids and seeds are in the action
            loop = loop.apply(Dispatched(action.first_index, action.k))
        loop = loop.apply(wait_for_next_event())  # Scored | Failed | Cancelled
        action = loop.next_action()
    answer = action.decision.chosen               # cancel whatever is still in flight

:meth:`QuestionLoop.next_action` asks the policy for a decision on the current state and
turns it into one action:

* :class:`Stop` — the policy stopped (or the question was cancelled); ``status`` is ``done``
  with a chosen sample, ``failed`` when it stopped without one (N_max failures), or
  ``cancelled``. After :class:`OutOfBudget` (its batch spent its token budget) the loop stops
  at once with reason ``budget``, answering with the policy's choice among the samples scored
  so far (``failed`` when there is none).
* :class:`Dispatch` — ``decision.target - n_live`` more samples are needed: sample indices
  ``first_index .. first_index + k - 1`` (ids ``"<question id>/<index>"``), each with its seed
  (:func:`sample_seed`; ``None`` when the question has no seed).
* :class:`Wait` — the samples in flight already cover the target: wait for the next event.

A policy that neither stops nor needs a sample while nothing is in flight would hang the
driver; :meth:`~QuestionLoop.next_action` raises :class:`StalledLoopError` instead.

Sample indices only grow (``next_index``), so an id is never reused, even after failures or
when a new controller takes the question over (it resumes from the stored counts with
:meth:`QuestionLoop.resume`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from optscale.errors import InvalidArgumentError
from optscale.policies import Chosen, Decision, Observation, Policy, QuestionState
from optscale.question_state import choose_best

__all__ = [
    "Action",
    "Cancelled",
    "Dispatch",
    "Dispatched",
    "Event",
    "Failed",
    "OutOfBudget",
    "QuestionLoop",
    "Scored",
    "StalledLoopError",
    "Stop",
    "Wait",
    "question_seed",
    "sample_id",
    "sample_seed",
]

_SEED_MASK = 0x7FFFFFFF


def question_seed(seed: int, question_id: str) -> int:
    """A 31-bit seed of its own for each question of a run seeded with ``seed``."""
    h = hashlib.sha256(f"{seed}:{question_id}".encode()).digest()
    return int.from_bytes(h[:4], "big") & _SEED_MASK


def sample_seed(seed: int | None, question_id: str, index: int) -> int | None:
    """The seed of sample ``index`` of a question (``None``: the engine picks).

    ``question_seed + index``, so a generator that gives sample ``i`` of a request with
    ``seed`` the seed ``seed + i`` (the contract in ``proto/optscale/v1/common.proto``) gets
    exactly these seeds from the first sample's."""
    return None if seed is None else question_seed(seed, question_id) + index


def sample_id(question_id: str, index: int) -> str:
    return f"{question_id}/{index}"


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Dispatched:
    """``k`` samples from ``first_index`` on were started (their stream is open)."""

    first_index: int
    k: int


@dataclass(frozen=True, slots=True)
class Scored:
    """A sample finished and was scored."""

    observation: Observation


@dataclass(frozen=True, slots=True)
class Failed:
    """``k`` dispatched samples ended without a score (generation or scoring failed)."""

    k: int = 1


@dataclass(frozen=True, slots=True)
class Cancelled:
    """The question was cancelled by its submitter."""

    reason: str = "cancelled"


@dataclass(frozen=True, slots=True)
class OutOfBudget:
    """The question's batch has spent its token budget: answer with what is scored now."""


Event = Dispatched | Scored | Failed | Cancelled | OutOfBudget


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class Dispatch:
    """Start ``k`` samples: indices ``first_index ..``, with these ids and seeds."""

    decision: Decision
    first_index: int
    k: int
    sample_ids: tuple[str, ...]
    seeds: tuple[int | None, ...]

    @property
    def first_seed(self) -> int | None:
        return self.seeds[0] if self.seeds else None


@dataclass(frozen=True, slots=True)
class Wait:
    """Enough samples are in flight: wait for the next event."""

    decision: Decision


@dataclass(frozen=True, slots=True)
class Stop:
    """The question is finished: answer ``decision.chosen`` (``None`` unless ``done``) and
    cancel what is still in flight."""

    decision: Decision
    status: str  # "done" | "failed" | "cancelled"

    @property
    def chosen(self) -> Chosen | None:
        return self.decision.chosen

    @property
    def reason(self) -> str:
        return self.decision.reason


Action = Dispatch | Wait | Stop


class StalledLoopError(RuntimeError):
    """The policy neither stops nor asks for a sample while nothing is in flight (a bug in
    the policy: the loop would wait forever)."""


# --------------------------------------------------------------------------- the loop


@dataclass(frozen=True, slots=True)
class QuestionLoop:
    """One question's loop state. Immutable: :meth:`apply` returns the next state."""

    question_id: str
    policy: Policy
    seed: int | None = None
    state: QuestionState = QuestionState()  # noqa: RUF009 (immutable)
    next_index: int = 0
    cancelled: str | None = None  # the cancel reason, once cancelled
    out_of_budget: bool = False

    @classmethod
    def start(cls, question_id: str, policy: Policy, *, seed: int | None = None) -> QuestionLoop:
        return cls(question_id, policy, seed)

    @classmethod
    def resume(
        cls,
        question_id: str,
        policy: Policy,
        *,
        seed: int | None,
        observations: tuple[Observation, ...] | list[Observation],
        n_dispatched: int,
        n_failed: int,
        next_index: int,
    ) -> QuestionLoop:
        """Rebuild from stored counts (a new owner, or after losing memory): the scored
        observations in arrival order, the failures, the samples counted as dispatched (scored
        + failed + in flight) and the next unused index."""
        st = QuestionState()
        for ob in observations:
            st = st.observe(ob)
        st = st.dispatched(max(0, n_dispatched - st.n_dispatched)).failed(n_failed)
        return cls(question_id, policy, seed, st, max(next_index, st.n_dispatched))

    # ------------------------------------------------------------------ transitions

    def apply(self, event: Event) -> QuestionLoop:
        if isinstance(event, Scored):
            return self.scored(event.observation)
        if isinstance(event, Dispatched):
            return self.dispatched(event.first_index, event.k)
        if isinstance(event, Failed):
            return self.failed(event.k)
        if isinstance(event, Cancelled):
            return replace(self, cancelled=event.reason or "cancelled")
        if isinstance(event, OutOfBudget):
            return replace(self, out_of_budget=True)
        raise InvalidArgumentError("event", event, "not a loop event")

    # the three hot transitions, without building an event (the controller's path)

    def scored(self, observation: Observation) -> QuestionLoop:
        return replace(self, state=self.state.observe(observation))

    def dispatched(self, first_index: int, k: int) -> QuestionLoop:
        _non_negative("k", k)
        _non_negative("first_index", first_index)
        nxt = max(self.next_index, first_index + k)
        return replace(self, state=self.state.dispatched(k), next_index=nxt)

    def failed(self, k: int = 1) -> QuestionLoop:
        return replace(self, state=self.state.failed(k))

    # ------------------------------------------------------------------ decisions

    def decide(self) -> Decision:
        return self.policy.decide(self.state)

    def next_action(self) -> Action:
        if self.cancelled is not None:
            d = Decision(True, self.state.n_scored, None, self.cancelled)
            return Stop(d, "cancelled")
        d = self.decide()
        if not d.stop and self.out_of_budget:
            choose = getattr(self.policy, "choose", choose_best)
            d = Decision(True, self.state.n_scored, choose(self.state), "budget", d.n_star, d.fit)
        if d.stop:
            return Stop(d, "done" if d.chosen is not None else "failed")
        k = d.target - self.state.n_live
        if k > 0:
            return self.dispatch_of(self.next_index, k, d)
        if self.state.n_inflight == 0:
            raise StalledLoopError(
                f"policy {self.policy.name!r} neither stops nor asks for samples "
                f"(n_scored={self.state.n_scored}, target={d.target})"
            )
        return Wait(d)

    def dispatch_of(self, first_index: int, k: int, decision: Decision) -> Dispatch:
        """The dispatch of samples ``first_index .. first_index + k - 1`` (a store that hands
        out indices itself may give another first index than :attr:`next_index`)."""
        q = self.question_id
        idx = range(first_index, first_index + k)
        return Dispatch(
            decision,
            first_index,
            k,
            tuple(sample_id(q, i) for i in idx),
            tuple(sample_seed(self.seed, q, i) for i in idx),
        )


def _non_negative(name: str, v: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise InvalidArgumentError(name, v, "must be an integer >= 0")

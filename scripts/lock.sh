#!/usr/bin/env bash
# Regenerate the lock files from pyproject.toml: every transitive dependency pinned with hashes.
# Run `make lock` after changing a dependency in pyproject.toml, and commit requirements/*.lock.
set -euo pipefail
cd "$(dirname "$0")/.."
tools="${PIPTOOLS_VENV:-.venv-lock}"
test -x "$tools/bin/pip-compile" || { python3 -m venv "$tools" && "$tools/bin/pip" install -q pip-tools==7.6.2; }
common=(--quiet --strip-extras --generate-hashes --allow-unsafe --no-emit-index-url --no-emit-find-links)
"$tools/bin/pip-compile" "${common[@]}" -o requirements/run.lock pyproject.toml
"$tools/bin/pip-compile" "${common[@]}" --extra dev -o requirements/dev.lock pyproject.toml
"$tools/bin/pip-compile" "${common[@]}" --extra dev --extra bench -o requirements/bench.lock pyproject.toml
# The peers' own environment (.venv-bench), not part of the project's dependencies.
"$tools/bin/pip-compile" "${common[@]}" -o requirements/bench-peers.lock requirements/bench-peers.in

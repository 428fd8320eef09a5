# The one image every service and the gateway run from (`args` pick the process).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml ./
COPY libs libs
COPY gen gen
COPY sdk sdk
COPY services services
COPY gateway gateway
COPY deploy deploy
RUN pip install --no-cache-dir . && useradd --uid 10001 --no-create-home deelrx
USER 10001

# syntax=docker/dockerfile:1
# One image for every Trunkline process: the six gRPC services (python -m trunkline.<svc>) and
# the rollout operator (python -m trunkline.rollout). The Helm chart sets the command per pod.
#
# NOTE: CI does not build this image (there is no container engine on the CI machines); it is
# kept simple and is built by the release pipeline: docker build -t trunkline:0.1.0 .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

# -- build: resolve exactly uv.lock, compile native wheels (llama-cpp-python), generate protobuf
FROM ${PYTHON_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake \
 && rm -rf /var/lib/apt/lists/*
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1
WORKDIR /app
COPY . .
# with the dev group first: tools/gen_proto.py needs grpcio-tools and mypy-protobuf
RUN uv sync --frozen --all-packages \
 && uv run --frozen --no-sync python tools/gen_proto.py \
 && uv sync --frozen --all-packages --no-dev \
 && .venv/bin/python -m compileall -q libs services operators cli

# -- runtime: the venv and the sources it points at (members are installed editable), non-root
FROM ${PYTHON_IMAGE} AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 trunkline \
 && useradd --uid 10001 --gid 10001 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin trunkline
WORKDIR /app
COPY --from=build --chown=root:root /app /app
ENV PATH=/app/.venv/bin:$PATH \
    VIRTUAL_ENV=/app/.venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
USER 10001:10001
# gRPC (per service, see the chart), Prometheus /metrics, gateway media streams
EXPOSE 50050-50056 9464 8080
CMD ["python", "-m", "trunkline.gateway"]

# syntax=docker/dockerfile:1.7
# Trunkline images, one Dockerfile (built by .github/workflows/images.yaml and skaffold.yaml):
#   CPU image, every process with the embedded models (Whisper, llama.cpp, Piper, MiniLM):
#     docker build -t trunkline:0.1.0 .
#   slim per-service images for the GPU path (Riva, vLLM): one member and what it needs
#     docker build --build-arg PACKAGE=trunkline-gateway -t trunkline-gateway:0.1.0 .
#     docker build --build-arg PACKAGE=trunkline-stt --build-arg EXTRAS=riva -t trunkline-stt-riva .
# Piper (GPL-3.0) is only in the images built with EXTRAS containing "piper" (the CPU image).
# The chart sets the command per pod (python -m trunkline.<service>); CMD is the gateway.
#
# Bases are pinned by digest (a tag moves; a digest does not). The release workflow checks that
# each digest still resolves before it builds. To move to a newer base:
#   docker buildx imagetools inspect python:3.11-slim-bookworm   # copy the index digest here
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

# -- build: the environment, from uv.lock exactly (llama-cpp-python compiles here for x86-64-v3)
FROM ${PYTHON_IMAGE} AS build
ARG PACKAGE=all
ARG EXTRAS="whisper piper llamacpp"
ARG UV_VERSION=0.13.9
SHELL ["/bin/sh", "-eu", "-c"]
# compilers for the sdists in uv.lock (llama-cpp-python); Debian's versions of the base's release
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake \
 && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
ENV UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/opt/trunkline
WORKDIR /src
COPY . .
RUN deploy/docker/install.sh "${PACKAGE}" "${EXTRAS}"

# -- runtime: the environment only (members installed non-editable), non-root, read-only friendly
FROM ${PYTHON_IMAGE} AS runtime
# libgomp1: OpenMP of llama.cpp and CTranslate2
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 trunkline \
 && useradd --uid 10001 --gid 10001 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin trunkline
COPY --from=build --chown=root:root /opt/trunkline /opt/trunkline
ENV PATH=/opt/trunkline/bin:$PATH \
    VIRTUAL_ENV=/opt/trunkline \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
USER 10001:10001
WORKDIR /tmp
# gRPC (per service, see the chart), Prometheus /metrics, gateway media streams
EXPOSE 50050-50056 9464 8080
ENTRYPOINT ["python", "-m"]
CMD ["trunkline.gateway"]

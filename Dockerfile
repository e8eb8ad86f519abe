# One Dockerfile for every facesearch image, installed from the lock (requirements/*.txt,
# exported from uv.lock with hashes: README, "Dependencies and the lock file"):
#
#   docker build -t facesearch:latest-api --build-arg TF_VARIANT=none .   # API, CLI, I/O worker
#   docker build -t facesearch:latest .                                   # + tensorflow-cpu
#   docker build -t facesearch:latest-gpu --build-arg TF_VARIANT=gpu .    # + tensorflow[and-cuda]
#
# TF_VARIANT picks the requirement set: none is the core alone (no TensorFlow, Keras, MTCNN: the
# API, the CLI, the migrate step and the light I/O worker), cpu adds the face pipeline on
# tensorflow-cpu (the `worker` extra), gpu the same pipeline on tensorflow[and-cuda] (the
# `worker-gpu` extra; the CUDA and cuDNN libraries come as pip wheels, so the same slim Python
# base image serves all three; the host needs only the NVIDIA driver and the NVIDIA Container
# Toolkit).
#
# PULL_MODELS=true (the default) downloads the FaceNet weights at build time into the images
# that run the pipeline, so a worker never needs the network to start. PULL_MODELS=false
# leaves that to the compose `migrate` service (`facesearch models pull` into the `models`
# volume). The TF_VARIANT=none image never carries weights.
#
# Classic-builder compatible (no heredocs, no BuildKit-only syntax): docker-compose 1.29 builds
# without BuildKit.

ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim-bookworm

ARG TF_VARIANT=cpu
ARG PULL_MODELS=true

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    MODEL_DIR=/models \
    DATA_DIR=/var/lib/facesearch

RUN groupadd --system --gid 10001 facesearch \
 && useradd --system --uid 10001 --gid facesearch --home-dir /home/facesearch --create-home facesearch \
 && mkdir -p /app /models /var/lib/facesearch \
 && chown facesearch:facesearch /models /var/lib/facesearch

WORKDIR /app

# Dependencies first, from the lock alone, so that a code change does not reinstall TensorFlow.
# With hashes pip installs exactly the locked files and refuses any package the set does not
# list; pip check then proves that no installed package's requirements are left unmet.
COPY requirements/ ./requirements/
RUN case "${TF_VARIANT}" in \
      none) reqs=api ;; \
      cpu) reqs=worker ;; \
      gpu) reqs=worker-gpu ;; \
      *) echo "TF_VARIANT must be none, cpu or gpu, not '${TF_VARIANT}'" >&2; exit 1 ;; \
    esac \
 && pip install --require-hashes -r "requirements/${reqs}.txt" \
 && pip check

# The project and its generated client (`facesearch ingest` and `search` use it), without
# dependencies: they are all in place from the lock.
COPY . .
RUN pip install --no-deps . ./clients/python/facesearch-client

USER facesearch

RUN if [ "${PULL_MODELS}" = "true" ] && [ "${TF_VARIANT}" != "none" ]; then facesearch models pull; fi

EXPOSE 8000

# The API under gunicorn as `facesearch serve` lays it out (threads for long polls, one
# /metrics over all its processes); the compose file gives each service its own command.
CMD ["facesearch", "serve", "--host=0.0.0.0", "--port=8000"]

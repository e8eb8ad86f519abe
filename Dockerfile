# One image for every facesearch process: the API (gunicorn), the Celery workers, the
# one-shot migrate service and the `facesearch` CLI.
#
#   docker build -t facesearch:latest .                              # tensorflow-cpu
#   docker build -t facesearch:latest-gpu --build-arg TF_VARIANT=gpu .   # tensorflow[and-cuda]
#
# TF_VARIANT=gpu swaps pyproject's tensorflow-cpu requirement for tensorflow[and-cuda] at the
# same version: the CUDA and cuDNN libraries come as pip wheels, so the same slim Python base
# image serves both; the host needs only the NVIDIA driver and the NVIDIA Container Toolkit.
#
# PULL_MODELS=true (the default) downloads the FaceNet weights at build time, so the image is
# self-contained and a worker never needs the network to start. PULL_MODELS=false leaves that
# to the compose `migrate` service (`facesearch models pull` into the `models` volume).
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

# Dependencies first, from pyproject.toml alone, so that a code change does not reinstall
# TensorFlow. The requirement list is pyproject's, with tensorflow-cpu swapped for
# tensorflow[and-cuda] when TF_VARIANT=gpu.
COPY pyproject.toml ./
RUN python -c "import re, sys, tomllib; \
variant = sys.argv[1]; \
assert variant in ('cpu', 'gpu'), 'TF_VARIANT must be cpu or gpu, not %r' % variant; \
deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
split = [re.match(r'^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(.*)', d).groups() for d in deps]; \
tf = [i for i, (name, _) in enumerate(split) if re.sub(r'[-_.]+', '-', name).lower() == 'tensorflow-cpu']; \
assert len(tf) == 1, 'expected one tensorflow-cpu requirement in pyproject.toml, found %d' % len(tf); \
out = [('tensorflow[and-cuda]' if variant == 'gpu' and i in tf else name) + rest for i, (name, rest) in enumerate(split)]; \
open('/tmp/requirements.txt', 'w').write('\n'.join(out) + '\n')" "${TF_VARIANT}" \
 && cat /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt

# The project itself (its dependencies are already in place; --no-deps keeps pip from putting
# tensorflow-cpu back next to tensorflow[and-cuda] in the GPU variant).
COPY . .
RUN pip install --no-deps .

USER facesearch

RUN if [ "${PULL_MODELS}" = "true" ]; then facesearch models pull; fi

EXPOSE 8000

CMD ["gunicorn", "--workers=2", "--bind=0.0.0.0:8000", "--access-logfile=-", "api.wsgi:app"]

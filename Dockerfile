# syntax=docker/dockerfile:1
# The vllm-chatops bot: `docker build -t vllm-chatops:0.1.0 .` (see README, "Deploy").
# Two stages: the build stage makes the wheel and a virtualenv with it; the final stage
# copies only that virtualenv and the runbooks, so no compiler, pip or build frontend ships.
# tests/test_deploy_image.py lints this file (hadolint), checks every COPY source against
# .dockerignore and builds the wheel the way the build stage does.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m pip install --no-cache-dir build==1.3.0
COPY pyproject.toml README.md ./
COPY bot ./bot
RUN python -m build --wheel --outdir /dist . \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir /dist/*.whl \
 && /opt/venv/bin/pip uninstall --yes pip setuptools

FROM ${PYTHON_IMAGE}
# Same base as the build stage, so the virtualenv's interpreter links stay valid.
# PYTHONDONTWRITEBYTECODE: the root filesystem is read-only (pip compiled the .pyc files);
# MPLCONFIGDIR: matplotlib's font cache goes to the writable /tmp (an emptyDir in Kubernetes);
# VLLM_CHATOPS_RUNBOOKS_DIR: the wheel carries the code, the runbooks are copied beside it.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    VLLM_CHATOPS_RUNBOOKS_DIR=/opt/vllm-chatops/runbooks
# The base image's own pip and setuptools are build tools too: remove them.
RUN python -m pip uninstall --yes pip setuptools wheel \
 && groupadd --system --gid 10001 chatops \
 && useradd --system --uid 10001 --gid chatops --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin chatops \
 && install -d -o chatops -g chatops -m 0750 /var/lib/vllm-chatops
COPY --from=build /opt/venv /opt/venv
COPY runbooks /opt/vllm-chatops/runbooks
# SQLite's default file lands here when DATABASE_URL is relative; mount a volume on it.
WORKDIR /var/lib/vllm-chatops
USER 10001:10001
EXPOSE 3000
ENTRYPOINT ["vllm-chatops"]
CMD ["serve", "--host", "0.0.0.0", "--port", "3000"]

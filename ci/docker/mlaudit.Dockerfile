# mlaudit tool image: runs every mlaudit step of the CI pipelines and, by its
# default command, the immutable MLflow server (`mlaudit server`).
# Build from the repository root (the context must hold pyproject.toml):
#   docker build -f ci/docker/mlaudit.Dockerfile \
#     --build-arg SOURCE_COMMIT="$(git rev-parse HEAD)" -t mlaudit .
# BASE_IMAGE is an argument so a registry mirror or an air-gapped copy can be
# used; the default is pinned by digest so a moved tag never changes the build.
ARG BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Dependencies first, from the hashed lock only: this layer is reused until the
# lock changes, and pip refuses any file whose sha256 is not in the lock.
COPY ci/docker/mlaudit.lock ci/docker/build.lock /src/ci/docker/
# --no-build-isolation: the one sdist in the lock (antlr4-python3-runtime, for
# hydra-core) builds with the venv's own setuptools, so pip never fetches an
# unhashed build backend.
RUN python3 -m venv /opt/mlaudit \
 && /opt/mlaudit/bin/pip install --require-hashes --no-build-isolation -r ci/docker/mlaudit.lock \
 && python3 -m venv /opt/build \
 && /opt/build/bin/pip install --require-hashes -r ci/docker/build.lock
COPY pyproject.toml README.md /src/
COPY schemas /src/schemas
COPY audit /src/audit
# The wheel carries these for `mlaudit init --ci` (pyproject's force-include).
COPY ci/github/mlaudit-publish.yml /src/ci/github/
COPY ci/docker/Dockerfile /src/ci/docker/
# The wheel is built from this context with the locked backend (no build
# isolation, so nothing unhashed is fetched) and installed without deps: every
# dependency already came from the lock above.
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /wheels /src \
 && /opt/mlaudit/bin/pip install --no-deps --no-index /wheels/mlaudit-*.whl \
 && /opt/mlaudit/bin/mlaudit --version

FROM ${BASE_IMAGE}
# Re-declared: an ARG before the first FROM is not visible inside a stage.
ARG BASE_IMAGE
ARG SOURCE_COMMIT=unknown
ARG SOURCE_URL=https://github.com/mlaudit/mlaudit
ARG VERSION=0.1.0
ARG CREATED=1970-01-01T00:00:00Z
LABEL org.opencontainers.image.title="mlaudit" \
      org.opencontainers.image.description="mlaudit CLI and immutable MLflow server" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.revision="${SOURCE_COMMIT}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
# git reads the trust files from the protected base branch (`git show REF:`);
# ssh-keygen lets users cross-check approvals. Debian versions are not pinned:
# the base digest fixes the release, and pinned .deb versions vanish from the
# mirror with every security update.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin mlaudit \
 && install -d -o mlaudit -g mlaudit /var/lib/mlaudit
COPY --from=build /opt/mlaudit /opt/mlaudit
# Nothing phones home: regulated users need that, and CI often has no internet.
ENV PATH=/opt/mlaudit/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=1 \
    DVC_NO_ANALYTICS=1
USER 10001:10001
WORKDIR /var/lib/mlaudit
EXPOSE 5000
# GitHub service containers cannot override the command, so the default is the
# server; job containers (GitHub `container:`, GitLab `image:`) run their own.
CMD ["mlaudit", "server", "--host", "0.0.0.0", "--port", "5000"]

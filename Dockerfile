# The KubeArts operator: kopf run -m kubearts.main.
# Build from the repository root: docker build -t ghcr.io/kubearts/operator:0.1.0 .
# The worker images are built from images/<name>/.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, from the lock file, so code changes do not rebuild this layer.
COPY requirements.lock ./
# requirements.lock is exported from uv.lock (`make lock`): every package with its hashes.
# --require-hashes refuses any other file, --no-deps and pip check refuse anything unlisted.
RUN pip install --no-deps --require-hashes -r requirements.lock && pip check
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip install --no-deps . && python -m compileall -q /opt/venv

FROM python:3.11-slim
RUN groupadd --gid 65532 kubearts \
    && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin kubearts
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 65532:65532
WORKDIR /tmp
EXPOSE 8080 8081
ENTRYPOINT ["kopf", "run", "--standalone", "--all-namespaces", "-m", "kubearts.main"]

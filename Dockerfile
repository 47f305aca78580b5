# syntax=docker/dockerfile:1
# CodeForge as one container: API, admin pages and workers in one process,
# state under /data (the embedded PostgreSQL cluster lives there unless
# CODEFORGE_DATABASE__URL points at a server of your own).

# --- build: a virtualenv with CodeForge and its dependencies -----------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/codeforge
WORKDIR /src
COPY pyproject.toml README.md ./
COPY codeforge ./codeforge
COPY adapters ./adapters
COPY migrations ./migrations
COPY config ./config
RUN /opt/codeforge/bin/pip install .

# --- runtime: the virtualenv, git, and an unprivileged user -----------------
FROM python:3.11-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends git ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 codeforge \
    && useradd --system --uid 10001 --gid codeforge --home-dir /data --shell /usr/sbin/nologin codeforge \
    && mkdir -p /data && chown codeforge:codeforge /data
COPY --from=build /opt/codeforge /opt/codeforge
ENV PATH=/opt/codeforge/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    CODEFORGE_DATA_DIR=/data \
    CODEFORGE_HTTP__HOST=0.0.0.0 \
    CODEFORGE_HTTP__PORT=8080 \
    CODEFORGE_LOG__FORMAT=json
USER codeforge
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
# Ready, not merely alive: the database (and later the queue) must answer.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/health/ready', timeout=4).status == 200 else 1)"]
# Exec form: codeforge is PID 1 and receives SIGTERM directly (graceful shutdown).
ENTRYPOINT ["codeforge"]
CMD ["serve"]

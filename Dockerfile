# ledgerlink's container image: Debian slim with Python 3.11, the application installed from
# uv.lock (exact versions, hashes checked), run as an unprivileged user. One image runs every
# role; the command picks it: `serve` (portal, REST API, /inbound), `worker`, `migrate`,
# `backup FILE`, ... (see compose.yaml and docs/operations.md).
#
# No secret is in the image: the vault key and the database password arrive at run time as
# files (compose.yaml mounts them), the configuration as LEDGERLINK_* variables.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: resolve nothing, install exactly what uv.lock pins -----------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/ledgerlink
# The same uv as the Makefile (UV_VERSION), so the lock is read the same way.
RUN pip install uv==0.13.9
WORKDIR /src
# Dependencies first (their layer is reused while only ledgerlink's code changes) ...
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project --python /usr/local/bin/python3.11
# ... then ledgerlink itself, as a regular (non-editable) install.
COPY ledgerlink ./ledgerlink
RUN uv sync --frozen --no-dev --no-editable --python /usr/local/bin/python3.11

# ---- run -------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
# postgresql-client: pg_dump / pg_restore for `ledgerlink backup` and `restore` (Debian
# bookworm's is 15: use a PostgreSQL 15 server, or a client as new as the server).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-client \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 ledgerlink \
 && useradd --system --uid 10001 --gid ledgerlink --home-dir /var/lib/ledgerlink \
      --shell /usr/sbin/nologin ledgerlink \
 && install -d -o ledgerlink -g ledgerlink -m 0700 /var/lib/ledgerlink
COPY --from=build /opt/ledgerlink /opt/ledgerlink
COPY deploy/docker/entrypoint.sh /usr/local/bin/ledgerlink-entrypoint
ENV PATH=/opt/ledgerlink/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LEDGERLINK_VAR_DIR=/var/lib/ledgerlink \
    LEDGERLINK_HOST=0.0.0.0 \
    LEDGERLINK_PORT=8000 \
    LEDGERLINK_LOG_FORMAT=json
USER ledgerlink:ledgerlink
WORKDIR /var/lib/ledgerlink
VOLUME ["/var/lib/ledgerlink"]
EXPOSE 8000
# Ready = the database answers, its schema is current and the job queue is usable (the
# load balancer's question too). The image has no curl: Python asks.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('LEDGERLINK_PORT', '8000')}/readyz\", timeout=4); sys.exit(0)"]
ENTRYPOINT ["ledgerlink-entrypoint"]
CMD ["serve"]

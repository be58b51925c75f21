# The SQL data service example (examples/sql_service) as a container image.
#
#   docker build -t gooddata-flight-sql-service .
#   docker run --rm -p 17001:17001 -p 8877:8877 -p 17101:17101 \
#     -e GOODDATA_FLIGHT_SERVER__ADVERTISE_HOST=127.0.0.1 \
#     -e GOODDATA_FLIGHT_ENUMERATED_TOKENS__TOKENS='["change-me"]' \
#     gooddata-flight-sql-service
#
# See deploy/README.md for Kubernetes and for running several replicas.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed numeric user without privileges, so that Kubernetes' runAsNonRoot can verify it.
RUN groupadd --system --gid 10001 flight \
    && useradd --system --uid 10001 --gid flight --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin flight \
    && mkdir -p /data \
    && chown flight:flight /data

WORKDIR /app

# The server package and its dependencies first: this layer changes only when they do.
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".[examples]"

# The service: the CLI finds `sql_service.main` in the working directory.
COPY examples/sql_service ./sql_service
COPY deploy/server.toml /etc/gooddata-flight-server/server.toml

USER 10001:10001
VOLUME ["/data"]

# Flight RPC, health checks (/ready, /live), Prometheus metrics (/metrics): see deploy/server.toml.
EXPOSE 17001 8877 17101

HEALTHCHECK --interval=15s --timeout=3s --start-period=20s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8877/live', timeout=2)"]

# SIGTERM (docker stop, Kubernetes) drains in-flight calls, then stops; exit code 0.
CMD ["gooddata-flight-server", "start", "--methods-provider", "sql_service.main", "--config", "/etc/gooddata-flight-server/server.toml"]

# The datapolicy image: `datapolicy serve` by default; `datapolicy worker` with another command.
# Built from this checkout with `docker build -t datapolicy .` (docs/deployment.md).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir --disable-pip-version-check --prefix=/install .

FROM python:3.11-slim
# DATAPOLICY_* are the settings' environment variables (docs/configuration.md); listening on
# every interface is right inside a container, whose network the orchestrator controls.
# A `worker` serves its metrics and /healthz on the same port as `serve` (its --metrics-port and
# --metrics-host), so that the one HEALTHCHECK below fits both.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DATAPOLICY_DATA_DIR=/var/lib/datapolicy \
    DATAPOLICY_HOST=0.0.0.0 \
    DATAPOLICY_PORT=8080 \
    DATAPOLICY_METRICS_HOST=0.0.0.0 \
    DATAPOLICY_METRICS_PORT=8080
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/datapolicy \
        --shell /usr/sbin/nologin datapolicy \
    && mkdir -p /var/lib/datapolicy \
    && chown datapolicy:datapolicy /var/lib/datapolicy \
    && chmod 0700 /var/lib/datapolicy
COPY --from=build /install /usr/local
USER datapolicy
WORKDIR /var/lib/datapolicy
# The signing key, local packages (exports/) and the spool: a volume, shared by the API and the
# workers of one host (docker-compose.yml).
VOLUME ["/var/lib/datapolicy"]
EXPOSE 8080
# Liveness only (/healthz touches no dependency), of `serve` and of `worker` alike. The slim
# image has no curl: Python asks.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('DATAPOLICY_PORT', '8080'), timeout=2)"
# SIGTERM (what `docker stop` sends) drains: see docs/architecture.md, "Health and shutdown".
STOPSIGNAL SIGTERM
ENTRYPOINT ["datapolicy"]
CMD ["serve"]

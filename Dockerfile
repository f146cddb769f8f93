# A Dragonfly fleet process per container; scale by running more containers.
#   docker build -t dragonfly .
#   docker run -e DATABASE_URL=postgresql://... -p 9400:9400 dragonfly worker enrich
#   docker run -e DATABASE_URL=postgresql://... dragonfly scheduler
# Every container serves /healthz, /readyz and /metrics on port 9400.
# Migrations: run `dragonfly db migrate` once per release (a job / init container),
# or `dragonfly up` for everything in one container.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY workers ./workers
COPY sql ./sql
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DRAGONFLY_HOME=/var/lib/dragonfly \
    DRAGONFLY_LOG_FORMAT=json \
    DRAGONFLY_METRICS_HOST=0.0.0.0 \
    DRAGONFLY_METRICS_PORT=9400
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/dragonfly --create-home dragonfly
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels dragonfly-workers \
    && rm -rf /wheels
USER dragonfly
WORKDIR /var/lib/dragonfly
EXPOSE 9400
# The dragonfly process is PID 1: it handles SIGTERM itself (finish in-flight jobs
# within the grace period, exit 0); give `docker stop -t` / terminationGracePeriodSeconds
# more than that grace period.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('DRAGONFLY_METRICS_PORT', '9400') + '/healthz', timeout=2)"]
ENTRYPOINT ["dragonfly"]
CMD ["worker", "enrich"]

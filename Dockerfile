# Stage 1: build the orgservice wheel from the repository.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY generated ./generated
COPY orgservice ./orgservice
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# Stage 2: the runtime, with only that wheel and its pinned dependencies.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ORGSERVICE_HOST=0.0.0.0 \
    ORGSERVICE_METRICS_PORT=9464 \
    ORGSERVICE_DATABASE_URL=sqlite:////data/orgservice.db
COPY --from=build /wheels /tmp/wheels
COPY requirements.lock /tmp/requirements.lock
RUN pip install --no-cache-dir -c /tmp/requirements.lock /tmp/wheels/*.whl \
    && rm -rf /tmp/wheels /tmp/requirements.lock \
    && groupadd --system --gid 10001 orgservice \
    && useradd --system --uid 10001 --gid orgservice --home-dir /data --no-create-home \
       orgservice \
    && mkdir /data && chown orgservice:orgservice /data

# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 50051 9464

# Liveness of the serving port. With TLS on, set ORGSERVICE_HEALTH_PORT and point
# `--address` at that plaintext health listener instead.
HEALTHCHECK --interval=10s --timeout=5s --start-period=40s --retries=3 \
    CMD ["orgservice", "health", "--address", "127.0.0.1:50051", "--timeout", "3"]

# Keys: ORGSERVICE_JWKS_URL or ORGSERVICE_JWT_PUBLIC_KEY_FILE (without a key source the
# server refuses to start). Database: ORGSERVICE_DATABASE_URL (SQLite under /data by default).
ENTRYPOINT ["orgservice"]
CMD ["serve"]

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app

COPY pyproject.toml requirements.lock README.md ./
COPY generated ./generated
COPY orgservice ./orgservice
RUN pip install --no-cache-dir -c requirements.lock . \
    && useradd --system --uid 10001 orgservice \
    && mkdir /data && chown orgservice /data

USER orgservice
WORKDIR /data
EXPOSE 50051
# Configure keys with ORGSERVICE_JWKS_URL or ORGSERVICE_JWT_PUBLIC_KEY_FILE and the
# database with ORGSERVICE_DATABASE_URL; without a key source the server refuses to start.
ENTRYPOINT ["orgservice"]
CMD ["serve", "--host", "0.0.0.0"]

# ordercopy: one image for every process of the Procfile (release, web, worker, beat).
# `docker compose up` (compose.yaml) runs them against PostgreSQL and Redis.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The locked runtime first: this layer changes only when the lock does.
COPY requirements/run.txt requirements/run.txt
RUN pip install --require-hashes -r requirements/run.txt

COPY pyproject.toml README.md LICENSE alembic.ini Procfile ./
COPY config config
COPY models models
COPY copying copying
COPY tasks tasks
COPY worker worker
COPY api api
COPY dashboard dashboard
COPY cli cli
COPY migrations migrations
RUN pip install --no-deps . \
    && useradd --system --uid 10001 --home-dir /var/lib/ordercopy --create-home ordercopy

USER ordercopy
# The worker's metrics files and beat's schedule live here (ORDERCOPY_DATA_DIR).
ENV ORDERCOPY_ENV=production \
    ORDERCOPY_DATA_DIR=/var/lib/ordercopy \
    HOST=0.0.0.0 \
    PORT=8000
EXPOSE 8000
CMD ["sh", "-c", "exec uvicorn api.app:app --host \"$HOST\" --port \"$PORT\""]

# yadtq worker image (used by docker-compose.yml).
#
#   docker build -t yadtq .
#   docker run --rm -e YADTQ_BROKER_URL='kafka://b-1.example.com:9092;b-2.example.com:9092' yadtq
#
# Every dependency ships manylinux wheels for CPython 3.11, so no compiler is needed.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY yadtq_app ./yadtq_app
COPY agents ./agents
COPY tables ./tables
COPY docker/entrypoint.sh /usr/local/bin/yadtq-entrypoint
COPY docker/healthcheck.py /usr/local/bin/yadtq-healthcheck
RUN pip install --no-cache-dir . \
    && chmod 755 /usr/local/bin/yadtq-entrypoint /usr/local/bin/yadtq-healthcheck \
    && useradd --system --uid 1000 --no-create-home --home-dir /nonexistent yadtq \
    && mkdir /data && chown yadtq /data

# The worker's RocksDB tables: one volume per container (a scaled service gets one
# anonymous volume per replica). They are a cache of the changelog topics, rebuilt
# from Kafka when empty.
ENV YADTQ_DATA_DIR=/data
VOLUME ["/data"]

USER yadtq
EXPOSE 6066
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=6 CMD ["yadtq-healthcheck"]
# The entry point sets YADTQ_WEB_HOST to the container's address (see docker/entrypoint.sh).
ENTRYPOINT ["yadtq-entrypoint"]
CMD ["yadtq", "worker"]

# yadtq worker image (used by docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY yadtq_app ./yadtq_app
COPY agents ./agents
COPY tables ./tables
RUN pip install --no-cache-dir .
ENV YADTQ_WEB_HOST=0.0.0.0 \
    YADTQ_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 6066
CMD ["yadtq", "worker"]

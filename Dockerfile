# The image config/deployment.yaml runs: `docker build -t katib:latest .`
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY requirements.txt .
# Runtime dependencies only: the file's "# Tests" section (pytest, kubectl...) stays out of the image.
RUN sed '/^# Tests/,$d' requirements.txt > /tmp/runtime-requirements.txt \
    && pip install -r /tmp/runtime-requirements.txt \
    && rm /tmp/runtime-requirements.txt

COPY katib.py ./
COPY katib/ katib/
COPY collector/ collector/
COPY config/ config/

# The numeric user matches the Deployment's runAsUser (runAsNonRoot needs a numeric USER).
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /var/lib/katib katib \
    && mkdir -p /var/lib/katib && chown katib:katib /var/lib/katib
USER 10001
VOLUME /var/lib/katib
EXPOSE 8443 8080

CMD ["python", "/app/katib.py", "serve", "--leader-elect", "--db", "/var/lib/katib/katib.db"]

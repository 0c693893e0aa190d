# Seatlock service image. `docker compose up` builds it; see docker-compose.yml.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, in their own layer: a change to the code does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir -p src/seatlock && touch src/seatlock/__init__.py && pip install . && pip uninstall -y seatlock

COPY src ./src
COPY migrations ./migrations
COPY lua ./lua
# Installed in place (editable): the migrations and the Lua scripts are found beside the
# package, as in a clone.
RUN pip install --no-deps -e . \
    && useradd --system --home-dir /app --shell /usr/sbin/nologin seatlock \
    && mkdir -p /var/lib/seatlock/images \
    && chown -R seatlock /var/lib/seatlock

USER seatlock

ENV SEATLOCK_HOST=0.0.0.0 \
    SEATLOCK_PORT=8000 \
    SEATLOCK_DATA_DIR=/var/lib/seatlock \
    SEATLOCK_IMAGE_DIR=/var/lib/seatlock/images

EXPOSE 8000

HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/ready', timeout=3)"]

# The schema first, then the service; exec so that the service gets the stop signal.
CMD ["sh", "-c", "seatlock migrate && exec seatlock serve"]

# mini-forge image: `mini-forge api` by default; the refiller runs the same image.
# The build stage may compile wheels; the final stage gets only the virtualenv, no compilers.
FROM python:3.11-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shared shared
COPY refiller refiller
COPY api api
COPY mini_forge mini_forge
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home mini-forge
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY config config
# The SQLite counter lives in /app/data (DATABASE_URL=sqlite:///data/counter.db); compose
# mounts a named volume there, which takes this directory's owner on first use.
RUN mkdir data && chown mini-forge:mini-forge data
USER mini-forge
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ['PORT']}/healthz\", timeout=2)"]
CMD ["mini-forge", "api"]

# The scorer: the serving install only (confluent-kafka, onnxruntime, tokenizers; no torch, no
# training package, no developer tools). `docker build .` builds it (the last stage).
FROM python:3.11-slim AS serving

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY wirewatch ./wirewatch
COPY stream ./stream
RUN pip install . && useradd --system --uid 10001 wirewatch
USER wirewatch

# `wirewatch feed` (docker build --target feed): the serving install plus the feed extra (feedparser,
# trafilatura, py3langid, httpx), kept out of the scorer's image.
FROM serving AS feed
USER root
RUN pip install '.[feed]'
USER wirewatch
EXPOSE 9309
ENTRYPOINT ["wirewatch", "feed"]

FROM serving AS scorer
EXPOSE 9308
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9308/healthz')"
# Settings come from WIREWATCH_* variables (see docs/operating.md, Configuration).
ENTRYPOINT ["wirewatch", "serve"]

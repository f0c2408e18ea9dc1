# tts-service: a small CPU image. Build: docker build -t tts-service .
# Run:   docker run -p 3002:3002 -v "$PWD/voices:/voices:ro" -v tts-data:/data tts-service
# GPU:   docker build --build-arg DEVICE=cuda -t tts-service:cuda .
#        docker run --gpus all -p 3002:3002 tts-service:cuda   (NVIDIA Container Toolkit)
FROM python:3.11-slim

# cpu, or cuda: onnxruntime's GPU build with NVIDIA's CUDA and cuDNN wheels (the host
# gives only its driver), and the server refusing to start where CUDA does not work.
ARG DEVICE=cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Installed the way the README installs it (pip, from this source tree). Every compiled
# dependency (piper-tts with espeak-ng, onnxruntime, av, soxr) ships manylinux wheels,
# so the slim image needs no compiler and no apt packages.
COPY pyproject.toml README.md ./
COPY src ./src
# Both onnxruntime builds install the same module: the GPU one replaces the CPU one.
RUN pip install . && rm -rf build src/*.egg-info \
    && if [ "$DEVICE" = "cuda" ]; then \
         pip uninstall -y onnxruntime && pip install "onnxruntime-gpu[cuda,cudnn]>=1.21"; \
       elif [ "$DEVICE" != "cpu" ]; then echo "DEVICE must be cpu or cuda" >&2; exit 1; fi

# A fixed numeric non-root user, so Kubernetes' runAsNonRoot can verify it.
RUN groupadd --system --gid 10001 tts \
    && useradd --system --uid 10001 --gid 10001 --create-home tts \
    && mkdir -p /voices /data \
    && chown 10001:10001 /voices /data

# Extra voices: NAME.onnx + NAME.onnx.json files mounted here (the default voice is built in).
# Downloaded voices (tts-service voices download, --download-missing) and a refreshed
# catalog go to /data, which must stay writable.
ENV TTS_VOICES_DIR=/voices \
    TTS_DOWNLOAD_DIR=/data \
    TTS_DEVICE=${DEVICE}
VOLUME ["/voices", "/data"]

EXPOSE 3002
USER 10001:10001

# Liveness on /ping with the Python that is already here (slim has no curl).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; url = 'http://127.0.0.1:%s/ping' % os.environ.get('TTS_PORT', '3002'); sys.exit(0 if urllib.request.urlopen(url, timeout=4).status == 200 else 1)"]

# SIGTERM starts a graceful drain of up to TTS_DRAIN_SECONDS (30): give `docker stop`
# a longer --time (docker-compose.yml sets stop_grace_period).
STOPSIGNAL SIGTERM
CMD ["tts-service", "serve", "--host", "0.0.0.0"]

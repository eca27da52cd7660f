# syntax=docker/dockerfile:1
# The reference server as a container: a build stage that installs the package and its
# drivers into a virtual environment (binary wheels only: no compiler anywhere), and a final
# stage of the slim Python image with that environment, a non-root user and a data volume.
#
#   docker build -t storno-security .
#   docker run -p 8000:8000 -v storno-data:/data storno-security
#
# Rebuild regularly (`docker build --pull`) so the base image's security fixes reach you.

ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY storno_security ./storno_security
COPY reference_server ./reference_server
# hatchling builds this package's wheel (pure Python); every dependency must be a wheel, so
# no compiler is needed here either. tests/server/test_container.py installs the same way.
RUN python -m venv /opt/storno \
 && /opt/storno/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/storno/bin/pip install --only-binary=:all: \
        "$(ls /wheels/storno_security-*.whl)[server,postgres,redis]" \
 && /opt/storno/bin/pip uninstall --yes pip

FROM python:${PYTHON_VERSION}-slim-bookworm
RUN groupadd --system --gid 10001 storno \
 && useradd --system --uid 10001 --gid storno --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin storno \
 && install -d -o storno -g storno -m 0700 /data
COPY --from=build /opt/storno /opt/storno
COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/storno-entrypoint
ENV PATH=/opt/storno/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    STORNO_DATA_DIR=/data \
    STORNO_HOST=0.0.0.0
USER storno:storno
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('STORNO_PORT', '8000'), timeout=4)"]
ENTRYPOINT ["storno-entrypoint"]
CMD ["serve"]

# syntax=docker/dockerfile:1
# flux-tenant-exporter container image: build a wheel, install it with exactly pinned dependencies into a
# venv, copy the venv into a slim runtime, run as a numeric non-root user. No HEALTHCHECK: Kubernetes probes
# /healthz and /readyz. Pin the base by digest for reproducible builds:
#   docker build --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest> -t flux-tenant-exporter .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md requirements.lock ./
COPY LICENSE ./
COPY flux_tenant_exporter ./flux_tenant_exporter
RUN python -m venv /opt/flux-tenant-exporter \
 && python -m pip wheel --no-deps --wheel-dir /dist . \
 && /opt/flux-tenant-exporter/bin/pip install -c requirements.lock /dist/*.whl \
 && /opt/flux-tenant-exporter/bin/pip uninstall -y pip \
 && find /opt/flux-tenant-exporter -name '__pycache__' -prune -exec rm -rf {} +

FROM ${PYTHON_IMAGE}
COPY --from=build /opt/flux-tenant-exporter /opt/flux-tenant-exporter
ENV PATH=/opt/flux-tenant-exporter/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
EXPOSE 9897
ENTRYPOINT ["flux-tenant-exporter"]
CMD ["serve"]

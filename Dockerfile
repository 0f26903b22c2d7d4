# csiprovider container image.
#   docker build -t csiprovider:0.1.0 .
# Stage 1 builds a wheel and installs it with the pinned runtime dependencies into a
# virtualenv; stage 2 copies only that virtualenv: no compiler, pip cache or sources.
# requirements.lock pins every runtime dependency; regenerate it after changing
# pyproject.toml with:
#   pip install --dry-run --ignore-installed --report r.json . && <list install[] pins>

ARG PYTHON=3.11

FROM python:${PYTHON}-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/csiprovider
COPY requirements.lock ./
RUN /opt/csiprovider/bin/pip install --require-virtualenv -r requirements.lock
COPY pyproject.toml README.md ./
COPY csiprovider ./csiprovider
RUN /opt/csiprovider/bin/pip wheel --no-deps -w /tmp/wheels . \
 && /opt/csiprovider/bin/pip install --no-deps /tmp/wheels/csiprovider-*.whl \
 && /opt/csiprovider/bin/csiprovider version

FROM python:${PYTHON}-slim-bookworm
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="csiprovider" \
      org.opencontainers.image.description="Secrets Store CSI Driver provider: files, Vault/OpenBao, AWS" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/csiprovider/csiprovider"
COPY --from=build /opt/csiprovider /opt/csiprovider
ENV PATH=/opt/csiprovider/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# A non-root user for local use (`csiprovider mount`, tests); the DaemonSet sets
# runAsUser: 0 because kubelet talks to the 0600 provider socket as root.
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin csiprovider
USER 10001
EXPOSE 8080
ENTRYPOINT ["csiprovider", "serve"]
CMD ["--providers-dir=/var/run/secrets-store-csi-providers"]

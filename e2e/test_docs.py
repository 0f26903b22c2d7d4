"""Every SPC in docs/native-dialect.md, mounted through the driver harness (both write
modes and the sync controller's call) against the real servers: the reference cannot
drift from the code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from e2e.conftest import ROOT
from e2e.test_examples import mount, read, world  # noqa: F401  (fixture)

DOC = ROOT / "docs" / "native-dialect.md"
BLOCKS = dict(re.findall(r"```yaml\n# doc-example: (\S+)\n(.*?)```", DOC.read_text(), re.S))

EXPECTED: dict[str, dict[str, bytes]] = {
    "files": {
        "db-password": b"e2e-pass-Wk27",
        "token": b"secret-base64",
        "db/password": b"e2e-pass-Wk27",
        "db/username": b"e2e-user-Zq81",
    },
    "vault": {
        "password": b"ex-pw",
        "app.json": b'{"mode":"prod","password":"ex-pw"}',
        "settings/password": b"ex-pw",
        "settings/mode": b"prod",
        "as-other-role": b"prod",
        "team/one": b"1",
        "team/two": b"2",
    },
    "aws": {
        "db-port": b"5432",
        "api-url": b"https://api.example.com",
        "app-params/api-url": b"https://api.example.com",
        "app-params/feature-flags": b"a,b",
    },
    "templates": {
        ".pgpass": b"db.internal:5432:*:e2e-user-Zq81:ex-pw",
        "jdbc-url": b"jdbc:postgresql://db.internal:5432/app?user=e2e-user-Zq81",
    },
}


def test_every_block_is_checked() -> None:
    assert set(BLOCKS) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_doc_example(world: dict[str, Any], tmp_path: Path, name: str) -> None:  # noqa: F811
    world["vault"].api("POST", "secret/data/team/one", {"data": {"v": "1"}})
    world["vault"].api("POST", "secret/data/team/two", {"data": {"v": "2"}})
    spc = tmp_path / "spc.yaml"
    spc.write_text(BLOCKS[name])
    mount(world, spc, tmp_path / "mnt", params={"vaultAddress": world["vault"].addr})
    assert read(tmp_path / "mnt") == EXPECTED[name]

"""Templates: files rendered from other objects, sandboxed and bounded."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.helpers import mount_request


@pytest.fixture
def inputs(file_root: Path) -> Path:
    (file_root / "default" / "db" / "host").write_text("db.internal")
    (file_root / "default" / "conf.json").write_text(json.dumps({"port": 5432}))
    return file_root


PGPASS = """
- {objectName: host, backend: file, path: db/host, render: false}
- {objectName: user, backend: file, path: db/username, render: false}
- {objectName: pass, backend: file, path: db/password, render: false}
- {objectName: conf, backend: file, path: conf.json, render: false}
- objectName: .pgpass
  filePermission: "0600"
  template: "{{ objects['host'] }}:{{ (objects['conf'] | fromjson).port }}:*:{{ objects['user'] }}:{{ objects['pass'] }}\\n"
- objectName: jdbc-url
  template: "jdbc:postgresql://{{ objects['host'] }}/app"
"""


async def test_template_renders_from_inputs_that_are_not_written(
    stub: Any, inputs: Path
) -> None:
    reply = await stub.Mount(mount_request(PGPASS))
    got = {f.path: (f.contents, f.mode) for f in reply.files}
    assert got == {".pgpass": (b"db.internal:5432:*:app_user:pw-0123456789\n", 0o600),
                   "jdbc-url": (b"jdbc:postgresql://db.internal/app", 0o644)}
    assert [v.id for v in reply.object_version] == [".pgpass", "jdbc-url"]


async def test_version_changes_exactly_when_a_read_input_changes(
    stub: Any, inputs: Path
) -> None:
    first = {v.id: v.version for v in (await stub.Mount(mount_request(PGPASS))).object_version}
    (inputs / "default" / "db" / "password").write_text("rotated")
    second = {v.id: v.version for v in (await stub.Mount(mount_request(PGPASS))).object_version}
    assert first[".pgpass"] != second[".pgpass"]
    assert first["jdbc-url"] == second["jdbc-url"]  # it does not read the password


@pytest.mark.parametrize(("template", "message"), [
    ("{{ objects.__class__.__mro__ }}", "sandbox"),
    ("{{ ''.__class__.__subclasses__() }}", "sandbox"),
    ("{{ objects['nope'] }}", "template refers to something undefined"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
     "template took longer than"),
    ("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", "template output exceeds"),
    ("{% include '/etc/passwd' %}", "template"),
])
async def test_hostile_templates_are_refused_safely(
    stub: Any, inputs: Path, template: str, message: str
) -> None:
    objects = [{"objectName": "host", "backend": "file", "path": "db/host"},
               {"objectName": "evil", "template": template}]
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Mount(mount_request(objects))
    assert message in (info.value.details() or "")
    assert time.monotonic() - started < 5
    assert "root:" not in (info.value.details() or "")
    # The daemon still serves.
    reply = await stub.Mount(mount_request(objects[:1]))
    assert reply.files[0].contents == b"db.internal"


async def test_template_syntax_error_is_invalid_argument(stub: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Mount(mount_request([{"objectName": "t", "template": "{{ oops"}]))
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "objects[0] (objectName 't'): template syntax error at line 1" in (
        info.value.details() or "")

"""The admin socket: `csiprovider refresh` asks the node's daemon to re-resolve tracked
volumes now (provider-writes mode), instead of waiting for the next rotation.

A Unix socket created 0600 (root only, like the provider sockets), never a TCP port: it
can make the daemon read every tracked pod's secrets again, so only someone who can
already exec into the provider pod may use it. One request per connection: a JSON line
`{"namespace": ..., "spc": ..., "pod": ...}` (empty: any); the answer is one JSON line
per volume, `{"target", "namespace", "pod", "spc", "result": changed|unchanged|failed,
"error"?}`, then a last line `{"done": true, "mode": ...}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from csiprovider.rotation import Tracker

log = logging.getLogger("csiprovider.admin")
MAX_REQUEST = 4096
FIELDS = ("namespace", "spc", "pod")


async def serve_admin(path: Path, tracker: Tracker, write_mode: str) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            if not line.endswith(b"\n"):
                return  # closed without a request: a probe (another daemon starting), not one
            try:
                raw = json.loads(line[:MAX_REQUEST])
                wanted = {k: str(raw.get(k) or "")[:253] for k in FIELDS}
            except (ValueError, AttributeError):
                wanted = None
            if wanted is None:
                answers: list[dict[str, Any]] = [{"error": "bad request"}]
            elif write_mode != "provider":
                answers = []
            else:
                log.info("refresh requested", extra={"fields": wanted})
                answers = list(await tracker.refresh(**wanted))
            for answer in [*answers, {"done": True, "mode": write_mode}]:
                writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a stale one; the caller made sure no daemon answers there
    old = os.umask(0o177)
    try:
        server = await asyncio.start_unix_server(handle, path=str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    return server


async def request_refresh(
    path: Path, namespace: str, spc: str, pod: str, timeout: float
) -> list[dict[str, Any]]:
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        query = {"namespace": namespace, "spc": spc, "pod": pod}
        writer.write(json.dumps(query).encode() + b"\n")
        await writer.drain()
        answers = []
        while True:
            line = await asyncio.wait_for(reader.readline(), timeout)
            if not line:
                break
            answers.append(json.loads(line))
        return answers
    finally:
        writer.close()

"""The daemon in this test's event loop: the real grpc.aio server on a real Unix socket."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc

from csiprovider.rotation import Tracker
from csiprovider.server import ServeConfig, serve
from csiprovider.v1alpha1 import service_pb2_grpc as pb_grpc


@contextlib.asynccontextmanager
async def running(
    config: ServeConfig, tracker: Tracker | None = None
) -> AsyncIterator[dict[str, Any]]:
    """Run `serve` in this loop; yield a stub per provider name; stop and drain after."""
    stop = asyncio.Event()
    task = asyncio.create_task(serve(config, stop, tracker))
    sockets = {n: config.providers_dir / f"{n}.sock" for n in config.names}
    guard = asyncio.get_running_loop().time() + 60  # only against a hang: a busy machine waits
    while not all(p.exists() for p in sockets.values()) and not task.done():
        assert asyncio.get_running_loop().time() < guard, "the daemon made no socket in 60 s"
        await asyncio.sleep(0.02)
    if task.done():
        task.result()
    channels = {n: grpc.aio.insecure_channel(f"unix://{p}") for n, p in sockets.items()}
    try:
        yield {n: pb_grpc.CSIDriverProviderStub(c) for n, c in channels.items()}
    finally:
        for channel in channels.values():
            await channel.close()
        stop.set()
        await asyncio.wait_for(task, 60)


def listening(path: Path) -> bool:
    """Whether a process accepts connections on the Unix socket `path`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True

"""The daemon in this test's event loop: the real grpc.aio server on a real Unix socket."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc

from csiprovider.server import ServeConfig, serve
from csiprovider.v1alpha1 import service_pb2_grpc as pb_grpc


@contextlib.asynccontextmanager
async def running(config: ServeConfig) -> AsyncIterator[dict[str, Any]]:
    """Run `serve` in this loop; yield a stub per provider name; stop and drain after."""
    stop = asyncio.Event()
    task = asyncio.create_task(serve(config, stop))
    sockets = {n: config.providers_dir / f"{n}.sock" for n in config.names}
    for _ in range(200):
        if all(p.exists() for p in sockets.values()) or task.done():
            break
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
        await asyncio.wait_for(task, 10)

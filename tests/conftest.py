"""In-process daemon fixtures: the real grpc.aio server on a real Unix socket."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from csiprovider.server import ServeConfig, serve
from csiprovider.v1alpha1 import service_pb2_grpc as pb_grpc


@pytest.fixture
def file_root(tmp_path: Path) -> Path:
    root = tmp_path / "secrets"
    (root / "default" / "db").mkdir(parents=True)
    (root / "default" / "db" / "username").write_text("app_user")
    (root / "default" / "db" / "password").write_text("pw-0123456789")
    (root / "other").mkdir()
    (root / "other" / "theirs").write_text("other-namespace-secret")
    return root


@pytest.fixture
def hmac_key(tmp_path: Path) -> Path:
    key = tmp_path / "hmac.key"
    key.write_text("0123456789abcdef0123456789abcdef\n")
    return key


@pytest.fixture
def serve_config(tmp_path: Path, file_root: Path, hmac_key: Path) -> Callable[..., ServeConfig]:
    def make(**overrides: Any) -> ServeConfig:
        values: dict[str, Any] = {
            "names": ["csiprovider"],
            "providers_dir": tmp_path / "providers",
            "write_mode": "driver",
            "file_root": file_root,
            "hmac_key_file": hmac_key,
            "mount_timeout": 10.0,
            "shutdown_grace": 2.0,
            "fetch_workers": 4,
            "cache_ttl": 0.0,  # tests that change secrets between Mounts see the change
        }
        values.update(overrides)
        return ServeConfig(**values)

    return make


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


@pytest.fixture
async def stub(serve_config: Callable[..., ServeConfig]) -> AsyncIterator[Any]:
    async with running(serve_config()) as stubs:
        yield stubs["csiprovider"]


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "target"
    path.mkdir()
    yield path

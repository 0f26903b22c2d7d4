"""HTTP endpoints: `/healthz` (the process answers), `/readyz` (every socket answers a
Version call and the backends configured at daemon level are reachable), `/health/ready`
(vault-csi-provider's probe path, same as /readyz) and `/metrics` (Prometheus)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import grpc
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from csiprovider import API_VERSION
from csiprovider.v1alpha1 import service_pb2 as pb
from csiprovider.v1alpha1 import service_pb2_grpc as pb_grpc

log = logging.getLogger("csiprovider.health")

Check = Callable[[], Awaitable[str | None]]
"""A readiness check: None when fine, else what is wrong (shown in the /readyz body)."""


def socket_check(path: Path) -> Check:
    async def check() -> str | None:
        try:
            async with grpc.aio.insecure_channel(f"unix://{path}") as channel:
                await pb_grpc.CSIDriverProviderStub(channel).Version(
                    pb.VersionRequest(version=API_VERSION), timeout=2)
        except grpc.aio.AioRpcError as exc:
            return f"socket {path}: {exc.code().name}"
        return None

    return check


class Endpoints:
    def __init__(self, checks: Sequence[Check]) -> None:
        self._checks = list(checks)

    async def ready(self) -> list[str]:
        results = await asyncio.gather(*(c() for c in self._checks))
        return [r for r in results if r]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            parts = line.split()
            path = parts[1].split(b"?")[0] if len(parts) >= 2 else b""
            content_type = b"text/plain; charset=utf-8"
            if path == b"/healthz":
                status, body = b"200 OK", b"ok\n"
            elif path in (b"/readyz", b"/health/ready"):
                problems = await self.ready()
                status = b"200 OK" if not problems else b"503 Service Unavailable"
                body = ("ok\n" if not problems else "\n".join(problems) + "\n").encode()
            elif path == b"/metrics":
                status, body = b"200 OK", generate_latest()
                content_type = CONTENT_TYPE_LATEST.encode()
            else:
                status, body = b"404 Not Found", b"not found\n"
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: " + content_type
                         + b"\r\nContent-Length: " + str(len(body)).encode()
                         + b"\r\nConnection: close\r\n\r\n" + body)
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    async def start(self, address: str) -> asyncio.Server:
        """Listen on `host:port` (`:8080` means every interface)."""
        host, _, port = address.rpartition(":")
        server = await asyncio.start_server(self._handle, host.strip("[]") or None, int(port))
        log.info("http endpoints", extra={"fields": {"address": address}})
        return server

"""HTTP endpoints: `/healthz` (the process answers), `/readyz` (this daemon's own state:
every socket answers a Version call, the file root is there), `/health/ready`
(vault-csi-provider's probe path, same as /readyz) and `/metrics` (Prometheus).

Readiness stays local on purpose: a Vault outage must not mark every provider pod
NotReady while file and AWS Mounts still work (and stale content is served). Backend
reachability is probed in the background instead, at most every PROBE_INTERVAL seconds
whatever the probe rate, and shown as the `csiprovider_backend_reachable` metric and in
`/readyz?verbose`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from csiprovider import API_VERSION, metrics
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
                    pb.VersionRequest(version=API_VERSION), timeout=2
                )
        except grpc.aio.AioRpcError as exc:
            return f"socket {path}: {exc.code().name}"
        return None

    return check


PROBE_INTERVAL = 30.0

Probe = Callable[[], str | None]
"""A blocking reachability probe of a backend: None when it answered, else why not."""


@dataclass
class Reachability:
    """The last answer of one backend's background probe."""

    backend: str
    target: str
    probe: Probe
    problem: str | None = "not probed yet"
    checked: float = 0.0

    async def run(self, stop: asyncio.Event, interval: float = PROBE_INTERVAL) -> None:
        """Probe now and every `interval` seconds; log only when the answer changes."""
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            problem = await loop.run_in_executor(None, self.probe)
            if problem != self.problem and (problem or self.checked):
                log.log(
                    logging.WARNING if problem else logging.INFO,
                    "backend unreachable" if problem else "backend reachable",
                    extra={
                        "fields": {
                            "backend": self.backend,
                            "target": self.target,
                            "reason": problem or "",
                        }
                    },
                )
            self.problem, self.checked = problem, time.monotonic()
            metrics.BACKEND_REACHABLE.labels(self.backend).set(0 if problem else 1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    def detail(self) -> str:
        age = f", checked {time.monotonic() - self.checked:.0f}s ago" if self.checked else ""
        state = f"unreachable: {self.problem}" if self.problem else "reachable"
        return f"{self.backend} {self.target}: {state}{age} (not part of readiness)"


class Endpoints:
    def __init__(self, checks: Sequence[Check], reachability: Sequence[Reachability] = ()) -> None:
        self._checks = list(checks)
        self._reachability = list(reachability)

    async def ready(self) -> list[str]:
        results = await asyncio.gather(*(c() for c in self._checks))
        return [r for r in results if r]

    def _verbose(self, problems: list[str]) -> str:
        lines = [f"[-] {p}" for p in problems] or ["[+] sockets and file root ok"]
        lines += [f"[i] {r.detail()}" for r in self._reachability]
        return "\n".join(lines) + "\n"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            parts = line.split()
            target = parts[1] if len(parts) >= 2 else b""
            path, _, query = target.partition(b"?")
            content_type = b"text/plain; charset=utf-8"
            if path == b"/healthz":
                status, body = b"200 OK", b"ok\n"
            elif path in (b"/readyz", b"/health/ready"):
                problems = await self.ready()
                status = b"200 OK" if not problems else b"503 Service Unavailable"
                if b"verbose" in query.split(b"&"):
                    body = self._verbose(problems).encode()
                else:
                    body = ("ok\n" if not problems else "\n".join(problems) + "\n").encode()
            elif path == b"/metrics":
                status, body = b"200 OK", generate_latest()
                content_type = CONTENT_TYPE_LATEST.encode()
            else:
                status, body = b"404 Not Found", b"not found\n"
            writer.write(
                b"HTTP/1.1 "
                + status
                + b"\r\nContent-Type: "
                + content_type
                + b"\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\nConnection: close\r\n\r\n"
                + body
            )
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

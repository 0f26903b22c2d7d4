"""A minimal HTTP health endpoint: `/health/ready` (vault-csi-provider's probe path).

It answers 200 while the daemon serves. (Readiness that checks sockets and backends
belongs to the observability work; this keeps vault-helm's probes working.)
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("csiprovider.health")

PATHS = {b"/health/ready", b"/healthz"}


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        line = await asyncio.wait_for(reader.readline(), 5)
        parts = line.split()
        ok = len(parts) >= 2 and parts[0] in (b"GET", b"HEAD") and parts[1] in PATHS
        body = b"ok\n" if ok else b"not found\n"
        status = b"200 OK" if ok else b"404 Not Found"
        writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        await writer.drain()
    except (TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()


async def start(address: str) -> asyncio.Server:
    """Listen on `host:port` (`:8080` means every interface)."""
    host, _, port = address.rpartition(":")
    server = await asyncio.start_server(_handle, host or None, int(port))
    log.info("health endpoint", extra={"fields": {"address": address}})
    return server

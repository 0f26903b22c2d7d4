"""The daemon: one grpc.aio server per provider name, each on `<providers-dir>/<name>.sock`.

One server per name (rather than one server on many sockets) because the name decides
the dialect, and a request does not say which socket it came in on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import stat
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc

from csiprovider.backends import Backend
from csiprovider.backends.file import FileBackend
from csiprovider.resolver import Resolver
from csiprovider.service import ProviderService, WriteMode
from csiprovider.v1alpha1 import service_pb2_grpc as pb_grpc
from csiprovider.versions import Versioner

log = logging.getLogger("csiprovider.server")


@dataclass(frozen=True)
class ServeConfig:
    """Daemon settings, from flags or their environment variables."""

    names: Sequence[str]
    providers_dir: Path
    write_mode: WriteMode
    file_root: Path | None
    hmac_key_file: Path | None
    mount_timeout: float
    shutdown_grace: float
    fetch_workers: int


class ServeError(RuntimeError):
    """The daemon cannot serve a socket; the message says which and why."""


class SocketInUse(ServeError):
    """Another process is serving on the socket we were asked to create."""


def build_resolver(config: ServeConfig, executor: ThreadPoolExecutor) -> Resolver:
    """Wire the configured backends and the versioner."""
    backends: dict[str, Backend] = {}
    if config.file_root is not None:
        backends["file"] = FileBackend(config.file_root)
    if config.hmac_key_file is not None:
        versioner = Versioner.from_file(config.hmac_key_file)
    else:
        log.warning(
            "no --hmac-key-file: using a random key, object versions will change on restart"
        )
        versioner = Versioner.random()
    return Resolver(backends, versioner, executor)


def socket_path(providers_dir: Path, name: str) -> Path:
    return providers_dir / f"{name}.sock"


def prepare_socket(path: Path) -> None:
    """Remove a stale socket file; refuse to replace a live one or a non-socket file."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise SocketInUse(f"{path} exists and is not a socket; remove it or choose another name")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
    except OSError:
        log.info("removing stale socket", extra={"fields": {"socket": str(path)}})
        path.unlink(missing_ok=True)
        return
    finally:
        probe.close()
    raise SocketInUse(f"{path} is in use by another running provider")


async def serve(config: ServeConfig, stop: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM/SIGINT (or `stop` is set), then drain and remove the sockets."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    config.providers_dir.mkdir(parents=True, exist_ok=True)
    executor = ThreadPoolExecutor(config.fetch_workers, thread_name_prefix="fetch")
    resolver = build_resolver(config, executor)
    servers: list[tuple[grpc.aio.Server, Path]] = []
    try:
        for name in config.names:
            path = socket_path(config.providers_dir.absolute(), name)
            prepare_socket(path)
            server = grpc.aio.server()
            pb_grpc.add_CSIDriverProviderServicer_to_server(
                ProviderService(name, resolver, executor, config.write_mode,
                                config.mount_timeout),
                server,
            )
            old_umask = os.umask(0o177)  # the socket is born 0600: only root (kubelet) talks
            try:
                server.add_insecure_port(f"unix://{path}")
                await server.start()
            except RuntimeError:
                raise ServeError(
                    f"cannot listen on {path}: check the directory is writable and the path "
                    "is shorter than 108 bytes (the Unix socket limit)"
                ) from None
            finally:
                os.umask(old_umask)
            os.chmod(path, 0o600)
            servers.append((server, path))
            log.info("serving", extra={"fields": {"provider": name, "socket": str(path),
                                                  "write_mode": config.write_mode}})
        await stop.wait()
        log.info("stopping: draining in-flight mounts",
                 extra={"fields": {"grace_seconds": config.shutdown_grace}})
    finally:
        await asyncio.gather(*(s.stop(config.shutdown_grace) for s, _ in servers))
        for _, path in servers:
            path.unlink(missing_ok=True)
        executor.shutdown(wait=False, cancel_futures=True)
        log.info("stopped")

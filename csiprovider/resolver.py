"""Resolve the objects of one Mount: fetch in parallel, once per distinct source,
render, decode, version.

Backends are blocking (hvac, boto3, file I/O) and run in a bounded thread pool, so a
slow backend never stalls the event loop serving other Mounts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Hashable, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any

from csiprovider.atomic_writer import PayloadError, validate_path
from csiprovider.backends import Backend
from csiprovider.errors import DeadlineExceeded, FailedPrecondition, InvalidArgument, MountError
from csiprovider.fetchcache import FetchCache
from csiprovider.model import MountObject, MountResult, OutputFile
from csiprovider.transforms import decode
from csiprovider.versions import Versioner

_ENABLE_HINTS = {
    "file": "start the daemon with --file-root DIR",
    "vault": "serve a provider name with the vault dialect (--name vault)",
}


class Resolver:
    """Turns `MountObject`s into files and versions."""

    def __init__(
        self,
        backends: Mapping[str, Backend],
        versioner: Versioner,
        executor: Executor,
        cache: FetchCache | None = None,
    ) -> None:
        self._backends = backends
        self._versioner = versioner
        self._executor = executor
        self.cache = cache if cache is not None else FetchCache(ttl=0)

    async def resolve(self, objects: Sequence[MountObject], timeout: float) -> MountResult:
        """Fetch every distinct source once, all in parallel, within `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + timeout
        fetches: dict[tuple[str, Hashable], asyncio.Future[Any]] = {}
        for obj in objects:
            key = (obj.backend, obj.source)
            if key not in fetches:
                backend = self._backend(obj)
                fetches[key] = self.cache.fetch(
                    key, getattr(backend, "cacheable", False),
                    lambda b=backend, o=obj: loop.run_in_executor(  # type: ignore[misc]
                        self._executor, b.fetch, o, deadline),
                )
        # Fetches may be shared with other Mounts: stop waiting on them, never cancel them.
        done, pending = await asyncio.wait(
            set(fetches.values()), timeout=timeout, return_when=asyncio.FIRST_EXCEPTION
        )
        # Report the first failing object in SPC order among those that finished.
        for obj in objects:
            future = fetches[(obj.backend, obj.source)]
            if future in done and future.exception() is not None:
                exc = future.exception()
                if isinstance(exc, MountError):
                    raise exc
                raise MountError(f"{obj.label}: backend failed ({type(exc).__name__})")
        if pending:
            slow = [o.label for o in objects if fetches[(o.backend, o.source)] in pending]
            raise DeadlineExceeded(
                f"Mount did not finish within {timeout:.1f}s; still waiting for "
                f"{', '.join(slow)}"
            )
        files: list[OutputFile] = []
        versions: list[tuple[str, str]] = []
        for obj in objects:
            fetched = fetches[(obj.backend, obj.source)].result()
            backend = self._backends[obj.backend]
            rendered = backend.render(obj, fetched)
            content = self._files(obj, rendered, files)
            own = getattr(backend, "object_version", None)
            version = own(obj, fetched) if own is not None else None
            if version is None:
                version = self._versioner.version(obj.spec_json, content)
            versions.append((obj.object_name, version))
        return MountResult(files=tuple(files), versions=tuple(versions))

    def _files(
        self, obj: MountObject, rendered: bytes | Mapping[str, bytes], files: list[OutputFile]
    ) -> bytes:
        """Append the object's file(s); return the bytes its version covers."""
        if isinstance(rendered, bytes):
            contents = decode(rendered, obj.encoding, obj.label)
            files.append(OutputFile(path=obj.file_name, mode=obj.mode, contents=contents))
            return contents
        covered = bytearray()
        for name in sorted(rendered):
            path = f"{obj.file_name}/{name}"
            try:
                validate_path(path)
            except PayloadError:
                raise InvalidArgument(
                    f"{obj.label}: key {name!r} cannot be a file name; use secretKey or "
                    "jmesPath to pick keys with such names"
                ) from None
            contents = decode(rendered[name], obj.encoding, obj.label)
            files.append(OutputFile(path=path, mode=obj.mode, contents=contents))
            covered += len(name).to_bytes(4, "big") + name.encode()
            covered += len(contents).to_bytes(8, "big") + contents
        return bytes(covered)

    def _backend(self, obj: MountObject) -> Backend:
        backend = self._backends.get(obj.backend)
        if backend is None:
            raise FailedPrecondition(
                f"{obj.label}: backend {obj.backend!r} is not enabled on this daemon; "
                f"{_ENABLE_HINTS.get(obj.backend, 'see csiprovider serve --help')}"
            )
        return backend

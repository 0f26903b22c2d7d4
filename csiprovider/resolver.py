"""Resolve the objects of one Mount: fetch in parallel, once per distinct source,
decode, version.

Backends are blocking (hvac, boto3, file I/O) and run in a bounded thread pool, so a
slow backend never stalls the event loop serving other Mounts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor

from csiprovider.backends import Backend
from csiprovider.errors import DeadlineExceeded, FailedPrecondition, MountError
from csiprovider.model import MountObject, MountResult, OutputFile, Source
from csiprovider.transforms import decode
from csiprovider.versions import Versioner

_ENABLE_HINTS = {"file": "start the daemon with --file-root DIR"}


class Resolver:
    """Turns `MountObject`s into files and versions."""

    def __init__(
        self,
        backends: Mapping[type, Backend],
        versioner: Versioner,
        executor: Executor,
    ) -> None:
        self._backends = backends
        self._versioner = versioner
        self._executor = executor

    async def resolve(self, objects: Sequence[MountObject], timeout: float) -> MountResult:
        """Fetch every distinct source once, all in parallel, within `timeout` seconds."""
        loop = asyncio.get_running_loop()
        fetches: dict[Source, asyncio.Future[bytes]] = {}
        for obj in objects:
            if obj.source not in fetches:
                backend = self._backend(obj)
                fetches[obj.source] = loop.run_in_executor(self._executor, backend.fetch, obj)
        done, pending = await asyncio.wait(
            fetches.values(), timeout=timeout, return_when=asyncio.FIRST_EXCEPTION
        )
        for future in pending:
            future.cancel()
        # Report the first failing object in SPC order among those that finished.
        for obj in objects:
            future = fetches[obj.source]
            if future in done and future.exception() is not None:
                exc = future.exception()
                if isinstance(exc, MountError):
                    raise exc
                raise MountError(f"{obj.label}: backend failed ({type(exc).__name__})")
        if pending:
            slow = [obj.label for obj in objects if fetches[obj.source] in pending]
            raise DeadlineExceeded(
                f"Mount did not finish within {timeout:.1f}s; still waiting for "
                f"{', '.join(slow)}"
            )
        files: list[OutputFile] = []
        versions: list[tuple[str, str]] = []
        for obj in objects:
            contents = decode(fetches[obj.source].result(), obj.encoding, obj.label)
            files.append(OutputFile(path=obj.file_name, mode=obj.mode, contents=contents))
            versions.append((obj.object_name, self._versioner.version(obj.spec_json, contents)))
        return MountResult(files=tuple(files), versions=tuple(versions))

    def _backend(self, obj: MountObject) -> Backend:
        backend = self._backends.get(type(obj.source))
        if backend is None:
            raise FailedPrecondition(
                f"{obj.label}: backend {obj.backend!r} is not enabled on this daemon; "
                f"{_ENABLE_HINTS.get(obj.backend, 'see csiprovider serve --help')}"
            )
        return backend

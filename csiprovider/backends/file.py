"""The file backend: secrets are files under `<root>/<pod namespace>/`.

The namespace directory is the pod's identity: a pod never reads outside it, whether
by `..`, an absolute path or a symlink that points elsewhere.
"""

from __future__ import annotations

import dataclasses
import errno
import os
from collections.abc import Hashable
from pathlib import Path

from csiprovider import metrics
from csiprovider.backends import Grant
from csiprovider.errors import InvalidArgument, NotFound, PermissionDenied
from csiprovider.model import FileSource, MountObject

MAX_FILE_BYTES = 4 * 1024 * 1024


class FileBackend:
    """Reads objects from a directory tree; one subdirectory per Kubernetes namespace.

    The namespace is the whole authorization: every pod of a namespace may read its
    directory, so the namespace is the grant's scope and no login is needed. Reads are
    never kept (a local read costs less than a cache), only coalesced while in flight."""

    shares_reads = False

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def principal(self, obj: MountObject) -> Hashable:
        return self._namespace(obj)

    def grant(self, obj: MountObject) -> Grant:
        return Grant(scope=self._namespace(obj))

    def authorize(self, obj: MountObject, deadline: float) -> Grant:
        return self.grant(obj)

    @staticmethod
    def _namespace(obj: MountObject) -> str:
        source = obj.source
        assert isinstance(source, FileSource)
        return source.namespace

    def render(self, obj: MountObject, fetched: bytes | dict[str, bytes]
               ) -> bytes | dict[str, bytes]:
        return fetched

    def fetch(self, obj: MountObject, grant: Grant | None = None,
              deadline: float = 0.0) -> bytes | dict[str, bytes]:
        source = obj.source
        assert isinstance(source, FileSource)
        with metrics.backend_call("file", "list" if source.listing else "read"):
            return self._list(obj, source) if source.listing else self._read(obj)

    def _list(self, obj: MountObject, source: FileSource) -> dict[str, bytes]:
        """Every regular file under the prefix directory, at most `maxItems` of them."""
        limit = int(obj.options.get("max_items", 100))
        base = (self.root / source.namespace).resolve()
        top = (base / source.path).resolve()
        if not top.is_relative_to(base):
            raise PermissionDenied(f"{obj.label}: prefix {source.path!r} resolves outside "
                                   f"namespace {source.namespace!r}")
        if not top.is_dir():
            raise NotFound(f"{obj.label}: prefix {source.path!r} is not a directory in the "
                           f"file backend for namespace {source.namespace!r}")
        names = sorted(str(p.relative_to(top)) for p in top.rglob("*") if p.is_file())
        if len(names) > limit:
            raise InvalidArgument(f"{obj.label}: {len(names)} files under prefix "
                                  f"{source.path!r}, more than maxItems {limit}; narrow the "
                                  "prefix or raise maxItems")
        items = {}
        for name in names:
            sub = FileSource(source.namespace, f"{source.path.rstrip('/')}/{name}")
            items[name] = self._read(dataclasses.replace(obj, source=sub))
        return items

    def _read(self, obj: MountObject) -> bytes:
        """One file, confined to the namespace directory (symlinks included)."""
        source = obj.source
        assert isinstance(source, FileSource)
        base = self.root / source.namespace
        candidate = base / source.path
        try:
            real = candidate.resolve(strict=True)
            real_base = base.resolve(strict=True)
        except FileNotFoundError:
            raise NotFound(
                f"{obj.label}: file {source.path!r} not found in the file backend for "
                f"namespace {source.namespace!r}; create it under the daemon's --file-root "
                f"as {source.namespace}/{source.path}"
            ) from None
        except (OSError, RuntimeError) as exc:  # symlink loop, permission on a parent
            raise InvalidArgument(
                f"{obj.label}: cannot resolve {source.path!r} ({_reason(exc)})"
            ) from None
        if not real.is_relative_to(real_base):
            raise PermissionDenied(
                f"{obj.label}: path {source.path!r} resolves outside namespace "
                f"{source.namespace!r} of the file backend; a pod may only read files of its "
                "own namespace"
            )
        try:
            with open(real, "rb") as handle:
                if os.fstat(handle.fileno()).st_size > MAX_FILE_BYTES:
                    raise InvalidArgument(
                        f"{obj.label}: file {source.path!r} is larger than "
                        f"{MAX_FILE_BYTES} bytes, more than the driver accepts in one Mount"
                    )
                return handle.read()
        except IsADirectoryError:
            raise InvalidArgument(
                f"{obj.label}: {source.path!r} is a directory; name a file"
            ) from None
        except OSError as exc:
            raise InvalidArgument(
                f"{obj.label}: cannot read {source.path!r} ({_reason(exc)}); make it readable "
                "by the daemon"
            ) from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return os.strerror(exc.errno) if exc.errno != errno.ELOOP else "too many symlinks"
    return type(exc).__name__

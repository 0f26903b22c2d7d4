"""The file backend: secrets are files under `<root>/<pod namespace>/`.

The namespace directory is the pod's identity: a pod never reads outside it, whether
by `..`, an absolute path or a symlink that points elsewhere.

A directory prefix is read as one snapshot: when the source directory is swapped atomically
(`prefix -> ..data -> ..<timestamp>/`, a Kubernetes Secret volume or our own writer), every
Mount gets the files of one version (see `FileBackend._snapshot`).
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Hashable, Iterator
from pathlib import Path
from typing import Any

from csiprovider import metrics
from csiprovider.errors import InvalidArgument, NotFound, PermissionDenied, Unavailable
from csiprovider.model import Listing, MountObject, Rendered
from csiprovider.stores import Grant
from csiprovider.stores.file.source import FileSource

MAX_FILE_BYTES = 4 * 1024 * 1024
QUICK_BYTES = 64 * 1024  # read on the event loop up to this size
SNAPSHOT_ATTEMPTS = 10  # reads of a prefix that changed meanwhile, before giving up
HELD_FILES = 256  # files of a prefix kept open at once while checking it did not change


class FileBackend:
    """Reads objects from a directory tree; one subdirectory per Kubernetes namespace.

    The namespace is the whole authorization: every pod of a namespace may read its
    directory, so the namespace is the grant's scope and no login is needed. Reads are
    never kept (a local read costs less than a cache), only coalesced while in flight."""

    shares_reads = False

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def quick(self, obj: MountObject) -> bool:
        """One small regular file of the local file root: microseconds, so no thread hop.
        A prefix listing (thousands of files), a large file, or anything that may block
        on open (a FIFO) goes to a thread. (A missing file fails at once either way.)"""
        source = obj.source
        if not isinstance(source, FileSource) or source.listing:
            return False
        try:
            found = os.stat(self.root / source.namespace / source.path)
        except (OSError, ValueError):
            return True
        return stat.S_ISREG(found.st_mode) and found.st_size <= QUICK_BYTES

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

    def render(self, obj: MountObject, fetched: bytes | dict[str, bytes]) -> Rendered:
        return fetched if isinstance(fetched, bytes) else Listing(fetched)

    def object_version(self, obj: MountObject, fetched: Any) -> str | None:
        return None  # the keyed hash of the content

    def fetch(
        self, obj: MountObject, grant: Grant | None = None, deadline: float = 0.0
    ) -> bytes | dict[str, bytes]:
        source = obj.source
        assert isinstance(source, FileSource)
        with metrics.backend_call("file", "list" if source.listing else "read"):
            return self._list(obj, source) if source.listing else self._read(obj)

    def _list(self, obj: MountObject, source: FileSource) -> dict[str, bytes]:
        """Every regular file under the prefix directory, at most `maxItems` of them, as
        one snapshot (see `_snapshot`); a source that changed under every attempt is
        UNAVAILABLE, and the driver retries the Mount."""
        limit = source.max_items
        base = _real(obj, source, os.path.join(self.root, source.namespace))
        for attempt in range(SNAPSHOT_ATTEMPTS):
            if attempt:
                time.sleep(0.001 * attempt)  # out of step with a writer publishing again
            items = self._snapshot(obj, source, base, limit)
            if items is not None:
                return items
        raise Unavailable(
            f"{obj.label}: prefix {source.path!r} changed while it was read, "
            f"{SNAPSHOT_ATTEMPTS} times in a row; the driver will retry"
        )

    def _snapshot(
        self, obj: MountObject, source: FileSource, base: str, limit: int
    ) -> dict[str, bytes] | None:
        """One attempt at reading the prefix as it is at one instant; None when it changed
        meanwhile.

        The prefix is resolved once, and the listing and every open go to that real
        directory, not through the prefix's symlinks again. A directory an atomic writer
        swaps in (`prefix -> ..data -> ..<timestamp>/`) never changes once published, and
        is only deleted after `..data` has moved on. So once every listed file is open, the
        prefix must still resolve to the same directory: then nothing of it was deleted
        before (the listing is whole), and what is deleted later stays readable through
        the open descriptors. A file vanishing before it is opened means a switch: start
        over. A file that is itself a symlink (the prefix is a kubelet volume, `a ->
        ..data/a`) is resolved when opened, confined to the namespace, and must still
        resolve there once all are open."""
        prefix = os.path.join(base, source.path)
        top = self._prefix_dir(obj, source, base, prefix)
        if top is None:
            return None
        try:
            found = sorted(_walk(top))
        except FileNotFoundError:  # a directory of the listing deleted under us
            return None
        if len(found) > limit:  # a racing listing only ever finds fewer files
            raise InvalidArgument(
                f"{obj.label}: {len(found)} files under prefix "
                f"{source.path!r}, more than maxItems {limit}; narrow the "
                "prefix or raise maxItems"
            )
        # Past HELD_FILES descriptors (maxItems goes up to 10000), files are read at once:
        # still a snapshot, the check below just covers a longer time.
        hold = len(found) <= HELD_FILES
        items: dict[str, bytes] = {}
        opened: list[tuple[str, str, int]] = []
        followed: list[tuple[str, str]] = []
        try:
            for name, is_link in found:
                path = os.path.join(top, name)  # real: _walk enters no symlinked directory
                shown = f"{source.path.rstrip('/')}/{name}"
                if is_link:
                    path, link = os.path.realpath(path), path
                    if not _inside(path, base):
                        raise PermissionDenied(
                            f"{obj.label}: path {shown!r} resolves outside namespace "
                            f"{source.namespace!r} of the file backend; a pod may only read "
                            "files of its own namespace"
                        )
                    followed.append((link, path))
                fd = _open_file(obj, shown, path)
                if fd is None:
                    return None
                if hold:
                    opened.append((name, shown, fd))
                    continue
                try:
                    items[name] = _read_fd(obj, shown, fd)
                finally:
                    os.close(fd)
            if _real(obj, source, prefix) != top or any(
                os.path.realpath(link) != path for link, path in followed
            ):
                return None
            for name, shown, fd in opened:
                items[name] = _read_fd(obj, shown, fd)
        finally:
            for _, _, fd in opened:
                os.close(fd)
        return dict(sorted(items.items()))

    @staticmethod
    def _prefix_dir(obj: MountObject, source: FileSource, base: str, prefix: str) -> str | None:
        """The prefix's real directory, confined to the namespace; None when the directory
        it resolved to was deleted before it could be looked at (swapped out meanwhile)."""
        top = _real(obj, source, prefix)
        if not _inside(top, base):
            raise PermissionDenied(
                f"{obj.label}: prefix {source.path!r} resolves outside "
                f"namespace {source.namespace!r}"
            )
        try:
            is_dir = stat.S_ISDIR(os.stat(top).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            if _real(obj, source, prefix) != top:
                return None
            is_dir = False
        except OSError as exc:  # a symlink loop, permission on a parent
            raise InvalidArgument(
                f"{obj.label}: cannot resolve prefix {source.path!r} ({_reason(exc)})"
            ) from None
        if not is_dir:
            raise NotFound(
                f"{obj.label}: prefix {source.path!r} is not a directory in the "
                f"file backend for namespace {source.namespace!r}"
            )
        return top

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
                return _read_fd(obj, source.path, handle.fileno())
        except IsADirectoryError:
            raise InvalidArgument(
                f"{obj.label}: {source.path!r} is a directory; name a file"
            ) from None
        except OSError as exc:
            raise InvalidArgument(
                f"{obj.label}: cannot read {source.path!r} ({_reason(exc)}); make it readable "
                "by the daemon"
            ) from None


def _real(obj: MountObject, source: FileSource, path: str) -> str:
    """`path` with every symlink resolved (as far as it exists)."""
    try:
        return os.path.realpath(path)
    except (OSError, RuntimeError, ValueError) as exc:
        raise InvalidArgument(
            f"{obj.label}: cannot resolve {source.path!r} ({_reason(exc)})"
        ) from None


def _inside(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip("/") + "/")


def _open_file(obj: MountObject, shown: str, path: str) -> int | None:
    """A listed file, opened without following a symlink; None when it is gone or no
    longer a file (its version was deleted or replaced since it was listed)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # became a symlink since it was resolved
            return None
        raise InvalidArgument(
            f"{obj.label}: cannot read {shown!r} ({_reason(exc)}); make it readable by the daemon"
        ) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def _read_fd(obj: MountObject, shown: str, fd: int) -> bytes:
    if os.fstat(fd).st_size > MAX_FILE_BYTES:
        raise InvalidArgument(
            f"{obj.label}: file {shown!r} is larger than {MAX_FILE_BYTES} bytes, more than "
            "the driver accepts in one Mount"
        )
    chunks = []
    try:
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
    except OSError as exc:
        raise InvalidArgument(
            f"{obj.label}: cannot read {shown!r} ({_reason(exc)}); make it readable by the daemon"
        ) from None
    return b"".join(chunks)


def _walk(top: str, prefix: str = "") -> Iterator[tuple[str, bool]]:
    """(relative path, is a symlink) of every file under `top`. Like `Path.rglob("*")`
    keeping `is_file()`: symlinks to files count, symlinked directories are not entered,
    unreadable directories and an atomic writer's `..` entries are skipped."""
    try:
        with os.scandir(top) as entries:
            children = list(entries)
    except PermissionError:
        return
    for entry in children:
        if entry.name.startswith(".."):
            continue  # an atomic writer's own (`..data`, `..<timestamp>`): not payload
        rel = f"{prefix}{entry.name}"
        try:
            if entry.is_dir(follow_symlinks=False):
                yield from _walk(entry.path, f"{rel}/")
            elif entry.is_file():
                yield rel, entry.is_symlink()
        except FileNotFoundError:
            if entry.is_dir(follow_symlinks=False):
                raise  # a directory of the listing deleted under us
        except OSError:  # a symlink loop or a name that went away: not a file
            continue


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return os.strerror(exc.errno) if exc.errno != errno.ELOOP else "too many symlinks"
    return type(exc).__name__

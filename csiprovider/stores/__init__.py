"""Backends: blocking fetchers, one per secret store, run in the resolver's thread pool.

Every fetch is two steps. `authorize` proves the pod's own identity to the store (a Vault
login with its token, an STS exchange) and answers a `Grant` whose `scope` names the
pod's authorization class; `fetch` then reads with that grant. The resolver shares a read
between pods only under an equal scope, so a backend decides what may be shared by what
it puts in the scope (see docs/security.md).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Protocol

from csiprovider.model import MountObject, Rendered


@dataclass(frozen=True)
class Grant:
    """A pod proved who it is. Two grants have equal `scope` only when the store
    authorizes their pods identically; reads are shared under the scope, never wider."""

    scope: Hashable


class Backend(Protocol):
    """A secret store. Raises MountError subclasses, with messages naming the object."""

    shares_reads: bool
    """True: a read may serve other Mounts of the same scope for --cache-ttl."""

    def quick(self, obj: MountObject) -> bool:
        """True when fetching `obj` takes microseconds (a small local file): it then
        runs on the event loop, where a hop to a thread would cost more than the work."""

    def principal(self, obj: MountObject) -> Hashable:
        """Who the pod is to this store (no I/O): one authorization per principal and
        Mount, however many objects it has."""

    def grant(self, obj: MountObject) -> Grant | None:
        """The pod's grant when it is known and valid (no I/O), else None."""

    def authorize(self, obj: MountObject, deadline: float) -> Grant:
        """Log the pod in with its own credentials (blocking); refuse it when the store
        refuses it, whatever is known of other pods."""

    def fetch(self, obj: MountObject, grant: Grant, deadline: float) -> Any:
        """Fetch `obj.source` as `grant` (blocking, once per distinct read) before
        `deadline` (time.monotonic())."""

    def render(self, obj: MountObject, fetched: Any) -> Rendered:
        """This object's value out of what was fetched (a fetch may serve several
        objects); the extraction step (csiprovider.extract) takes it from there."""

    def object_version(self, obj: MountObject, fetched: Any) -> str | None:
        """The store's own version of the object when the dialect reports it (ASCP's
        VersionId); None: the keyed hash of the content (csiprovider.versions)."""


def what_is_read(source: Hashable) -> Hashable:
    """The part of a source that names what is read, without who reads it: a source's
    `identity` field is the pod, and the grant's scope stands for it in shared keys."""
    if dataclasses.is_dataclass(source) and not isinstance(source, type):
        return (
            type(source).__name__,
            *(
                getattr(source, f.name)
                for f in dataclasses.fields(source)
                if f.compare and f.name != "identity"
            ),
        )
    return source


class LazyBackend:
    """A backend built on first use, so a daemon loads a store's libraries (boto3, hvac)
    only once an object of that store resolves. It is built in a worker thread: before
    that, `grant` answers None, which sends the first Mount through `authorize` there."""

    def __init__(self, build: Callable[[], Backend], shares_reads: bool) -> None:
        self._build = build
        self._built: Backend | None = None
        self._lock = threading.Lock()
        self.shares_reads = shares_reads

    def built(self) -> Backend:
        """The backend itself, built now if it was not yet (blocking)."""
        return self._backend()

    def _backend(self) -> Backend:
        with self._lock:
            if self._built is None:
                self._built = self._build()
            return self._built

    def quick(self, obj: MountObject) -> bool:
        return False

    def principal(self, obj: MountObject) -> Hashable:
        built = self._built
        return built.principal(obj) if built is not None else ("unbuilt", obj.source)

    def grant(self, obj: MountObject) -> Grant | None:
        built = self._built
        return built.grant(obj) if built is not None else None

    def authorize(self, obj: MountObject, deadline: float) -> Grant:
        return self._backend().authorize(obj, deadline)

    def fetch(self, obj: MountObject, grant: Grant, deadline: float) -> Any:
        return self._backend().fetch(obj, grant, deadline)

    def render(self, obj: MountObject, fetched: Any) -> Rendered:
        return self._backend().render(obj, fetched)

    def object_version(self, obj: MountObject, fetched: Any) -> str | None:
        return self._backend().object_version(obj, fetched)

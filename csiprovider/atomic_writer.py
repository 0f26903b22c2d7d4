"""Publish a set of files into a directory so that readers switch from the old set to the new
one in a single step (the layout the kubelet and the Secrets Store CSI Driver use).

Pods read secrets from the volume at any moment; they must never see half of an update, such
as a new password next to an old username. The trick is one level of indirection: the real
files live in a hidden directory that is never modified once published, and one symlink
decides which hidden directory is current. Replacing that symlink with `rename(2)` is atomic.

    <target>/..2026_11_23_10_00_00.k3j9x_2a    real files of one version (never modified)
    <target>/..data   -> ..2026_11_23_10_00_00.k3j9x_2a
    <target>/<name>   -> ..data/<name>           one per top-level name (file or directory)

Names starting with `..` belong to the writer; payload paths may not use them.

One writer at a time per target: `write_atomic` holds an exclusive `flock(2)` on the target
directory itself from step 2 to the end, so writers in this process (each opens the directory
anew, and flock locks belong to the open file) and in other processes (a second daemon during
a rolling update) take turns. The lock adds nothing to the layout, which stays exactly the
kubelet's, and the kernel drops it when a writer dies, so a crash never leaves the target
locked. Callers may add their own lock per target in front (the daemon holds an asyncio lock
so that a waiting write does not hold a worker thread); this one is what makes the cleanup of
step 11 safe. A writer that cannot get the lock within `LOCK_TIMEOUT` seconds raises
TargetBusy and writes nothing. On a filesystem without flock support (some network
filesystems) the writer logs a warning and goes on unlocked, as before.

`write_atomic(target, payload)` goes through these steps:

 1. Check every path and mode before touching the disk, so a bad payload writes nothing.
    The target directory must already exist (the driver creates and mounts it). Then take
    the target's lock.
 2. Read `..data` to learn the current version directory, if any. It is only trusted when it
    names a timestamped directory inside the target; anything else is never deleted.
 3. Find the user-visible links to remove: our `<name> -> ..data/<name>` links whose name the
    new payload lacks. This also catches links a crashed writer left dangling.
 4. Compare the current version with the payload: same files, same bytes, same modes, and every
    top-level name already linked. If so, return False without a new version, which would
    wake every inotify watcher of `..data` for nothing (crash leftovers, which `..data` does
    not name, are still removed as in step 11).
 5. Make a new hidden timestamped directory and set it to 0755 whatever the umask, so a pod
    running as another user can traverse it.
 6. Write each file there, then set its exact mode with chmod (the umask must not narrow it)
    and fsync it; fsync every directory written. With a `group` (the pod's fsGroup), the
    target, the new directories and files are chowned to it first, so a mode like 0440
    serves a non-root pod of that group. The data is durable before anything
    points at it.
 7. Replace top-level plain files or directories that carry a payload name (left by a provider
    that wrote into the volume directly; a file is swapped for the link in one rename), then
    create missing `<name> -> ..data/<name>` links. They resolve through the old `..data`,
    so readers still see the old set, and links for new names dangle until the switch.
 8. Point a fresh `..data_tmp` symlink (a stale one from a crash is removed first) at the new
    directory, and fsync the target so the new directory entry and links are durable
    before the switch.
 9. Rename `..data_tmp` over `..data`: the atomic switch. fsync the target again.
10. Remove the user-visible links found in step 3; they now dangle.
11. Remove the old version directory, any timestamped directory a crashed writer left, and
    a stale `..data_tmp`. Only ever after the switch: before it, the old directory is what
    readers resolve, and the new one is what a crash must not lose. Sweeping every
    timestamped directory but the current one is safe because of the lock: no other writer
    can be between its steps 5 and 9, so any such directory is a crash's leftover, whatever
    its age. The unchanged case of step 4 sweeps too, so the next write of any kind removes
    what a crash left.

At every instant `..data` names one complete version: the old one until step 9, the new one
after. A reader resolving `<target>/<name>` sees a file of one of the two complete sets.
A SIGKILL at any step leaves that true; what it can leave behind (a half-written hidden
directory, `..data_tmp`, dangling links) is invisible through `..data` and is removed by the
next write.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from csiprovider.paths import PayloadError, validate_path

__all__ = ["FileProjection", "PayloadError", "TargetBusy", "validate_path", "write_atomic"]

log = logging.getLogger(__name__)

DATA_LINK = "..data"
DATA_LINK_TMP = "..data_tmp"
_VISIBLE_LINK_TMP = "..link_tmp"
_MAX_MODE = 0o777
# What step 5 creates: "..YYYY_MM_DD_HH_MM_SS." plus mkdtemp's random suffix. Only entries
# that match are ever treated as a version directory, read or removed.
_VERSION_DIR = re.compile(r"\.\.\d{4}(?:_\d{2}){5}\.[A-Za-z0-9_]+")
LOCK_TIMEOUT = 60.0  # seconds a writer waits for another one to finish with the target


@dataclass(frozen=True)
class FileProjection:
    """One file of the payload: its bytes and its permission bits (0 to 0o777)."""

    data: bytes = field(repr=False)
    mode: int


class TargetBusy(TimeoutError):
    """Another writer kept the target locked for longer than `LOCK_TIMEOUT`."""


def write_atomic(
    target_dir: str | os.PathLike[str],
    payload: Mapping[str, FileProjection],
    group: int | None = None,
) -> bool:
    """Make `target_dir` show exactly `payload`, switching versions atomically.

    Returns True when a new version was published, False when the directory already showed
    this payload (content and modes) and nothing had to be removed. Raises PayloadError for
    a bad path or mode (nothing written), FileNotFoundError or NotADirectoryError when the
    target is not an existing directory, TargetBusy when another writer kept the target
    locked for `LOCK_TIMEOUT` seconds (nothing written), and OSError when the filesystem
    refuses. Writers of one target, in any thread or process, take turns.

    `group`: a gid that owns the target, every directory and every file written (the
    pod's fsGroup), so that a mode like 0440 lets a non-root pod of that group read.
    """
    _validate_payload(payload)  # 1
    target = os.fspath(target_dir)
    if not stat.S_ISDIR(os.stat(target).st_mode):
        raise NotADirectoryError(f"target {target!r} is not a directory")
    with _locked(target):
        if group is not None and os.stat(target).st_gid != group:
            os.chown(target, -1, group)
        return _write_locked(target, payload, group)


def _write_locked(
    target: str, payload: Mapping[str, FileProjection], group: int | None = None
) -> bool:
    old_name = _current_version(target)  # 2
    new_top = {path.split("/", 1)[0] for path in payload}
    links = _visible_links(target)
    to_remove = links - new_top  # 3
    if (  # 4
        old_name is not None
        and not to_remove
        and new_top <= links
        and _version_matches(os.path.join(target, old_name), payload, group)
    ):
        _remove_leftovers(target, keep=old_name)
        return False

    stamp = datetime.now(UTC).strftime("..%Y_%m_%d_%H_%M_%S.")
    new_dir = tempfile.mkdtemp(prefix=stamp, dir=target)  # 5
    new_name = os.path.basename(new_dir)
    tmp_link = os.path.join(target, DATA_LINK_TMP)
    published = False
    try:
        os.chmod(new_dir, 0o755)
        _write_version(new_dir, payload, group)  # 6
        for name in sorted(new_top):  # 7
            _install_visible_link(target, name)
        _remove_if_symlink(tmp_link)  # 8
        os.symlink(new_name, tmp_link)
        _fsync_dir(target)
        os.rename(tmp_link, os.path.join(target, DATA_LINK))  # 9
        published = True
    finally:
        if not published:
            _remove_if_symlink(tmp_link)
            shutil.rmtree(new_dir, ignore_errors=True)
    _fsync_dir(target)

    for name in sorted(to_remove):  # 10
        path = os.path.join(target, name)
        if _is_visible_link(path, name):
            _best_effort(os.unlink, path)
    _remove_leftovers(target, keep=new_name)  # 11
    return True


@contextlib.contextmanager
def _locked(target: str) -> Iterator[None]:
    """Hold an exclusive flock on the target directory (see the module docstring)."""
    fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _lock(fd, target)
        yield  # closing the descriptor releases the lock
    finally:
        os.close(fd)


def _lock(fd: int, target: str) -> None:
    deadline = time.monotonic() + LOCK_TIMEOUT
    pause = 0.001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        except OSError as exc:
            if exc.errno == errno.EINTR:
                continue
            # No flock here (EBADF, ENOLCK, EOPNOTSUPP on some network filesystems): go on
            # unlocked, as this writer always did, rather than refuse to write at all.
            log.warning(
                "cannot lock %s (%s); writing without the lock", target, exc.strerror or exc
            )
            return
        if time.monotonic() >= deadline:
            raise TargetBusy(
                f"another writer kept {target!r} locked for more than {LOCK_TIMEOUT:g} seconds"
            )
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _validate_payload(payload: Mapping[str, FileProjection]) -> None:
    for path, projection in payload.items():
        validate_path(path)
        mode = projection.mode
        if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= _MAX_MODE:
            raise PayloadError(
                f"invalid mode {mode!r} for path {path}: must be permission bits 0 to 0o777"
            )
    for path in payload:
        parent, sep, _ = path.rpartition("/")
        while sep:
            if parent in payload:
                raise PayloadError(
                    f"invalid path: {path} needs {parent} to be a directory, but the payload "
                    f"also has {parent} as a file"
                )
            parent, sep, _ = parent.rpartition("/")


def _current_version(target: str) -> str | None:
    """The version directory `..data` names, or None when there is none we own."""
    try:
        name = os.readlink(os.path.join(target, DATA_LINK))
    except FileNotFoundError:
        return None
    if not _VERSION_DIR.fullmatch(name):
        return None
    if not os.path.isdir(os.path.join(target, name)):
        return None
    return name


def _visible_links(target: str) -> set[str]:
    """Top-level names that are our `<name> -> ..data/<name>` links."""
    with os.scandir(target) as entries:
        return {
            entry.name
            for entry in entries
            if not entry.name.startswith("..") and _is_visible_link(entry.path, entry.name)
        }


def _is_visible_link(path: str, name: str) -> bool:
    try:
        return os.readlink(path) == f"{DATA_LINK}/{name}"
    except OSError:  # absent, or not a symlink
        return False


def _version_matches(
    version_dir: str, payload: Mapping[str, FileProjection], group: int | None = None
) -> bool:
    """Whether `version_dir` holds exactly the payload: same files, bytes and modes (and
    group, when one is asked for)."""
    found: set[str] = set()
    for rel, info in _walk_files(version_dir):
        if rel is None:
            return False
        projection = payload.get(rel)
        if (
            projection is None
            or stat.S_IMODE(info.st_mode) != projection.mode
            or info.st_size != len(projection.data)
            or (group is not None and info.st_gid != group)
        ):
            return False
        found.add(rel)
    if found != set(payload):
        return False
    for rel, projection in payload.items():
        try:
            fd = os.open(os.path.join(version_dir, rel), os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return False
        with os.fdopen(fd, "rb") as stream:
            if stream.read() != projection.data:
                return False
    return True


def _walk_files(top: str, prefix: str = "") -> Iterator[tuple[str | None, os.stat_result]]:
    """Regular files under `top` as (relative path, lstat); (None, lstat) for anything else
    that is neither a regular file nor a directory, such as a symlink."""
    with os.scandir(top) as entries:
        children = list(entries)
    for entry in children:
        info = entry.stat(follow_symlinks=False)
        rel = f"{prefix}{entry.name}"
        if stat.S_ISDIR(info.st_mode):
            yield from _walk_files(entry.path, f"{rel}/")
        elif stat.S_ISREG(info.st_mode):
            yield rel, info
        else:
            yield None, info


def _write_version(
    version_dir: str, payload: Mapping[str, FileProjection], group: int | None = None
) -> None:
    written_dirs = [version_dir]
    if group is not None:
        os.chown(version_dir, -1, group)
    for rel in sorted(payload):
        projection = payload[rel]
        parts = rel.split("/")
        for depth in range(1, len(parts)):
            sub = os.path.join(version_dir, *parts[:depth])
            if not os.path.isdir(sub):
                os.mkdir(sub, 0o755)
                os.chmod(sub, 0o755)  # mkdir's mode is narrowed by the umask
                if group is not None:
                    os.chown(sub, -1, group)
                written_dirs.append(sub)
        path = os.path.join(version_dir, rel)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(path, flags, 0o600)
        try:
            view = memoryview(projection.data)
            while view:
                view = view[os.write(fd, view) :]
            if group is not None:
                os.fchown(fd, -1, group)
            os.fchmod(fd, projection.mode)  # exact bits, whatever the umask
            os.fsync(fd)
        finally:
            os.close(fd)
    for directory in reversed(written_dirs):  # deepest first, the version directory last
        _fsync_dir(directory)


def _install_visible_link(target: str, name: str) -> None:
    path = os.path.join(target, name)
    if _is_visible_link(path, name):
        return
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        os.symlink(f"{DATA_LINK}/{name}", path)
        return
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(path)  # written directly by a provider; rename cannot replace a directory
        os.symlink(f"{DATA_LINK}/{name}", path)
        return
    # A plain file (or a foreign symlink): replace it in one step so the name never vanishes.
    tmp = os.path.join(target, _VISIBLE_LINK_TMP)
    _remove_if_symlink(tmp)
    os.symlink(f"{DATA_LINK}/{name}", tmp)
    os.rename(tmp, path)


def _remove_leftovers(target: str, keep: str) -> None:
    """Remove version directories and temporary links that `..data` does not name."""
    current = _current_version(target)
    with os.scandir(target) as entries:
        children = list(entries)
    for entry in children:
        if entry.name in (keep, current):
            continue
        if _VERSION_DIR.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
            _best_effort(shutil.rmtree, entry.path)
        elif entry.name in (DATA_LINK_TMP, _VISIBLE_LINK_TMP) and entry.is_symlink():
            _best_effort(os.unlink, entry.path)


def _best_effort(remove: Callable[[str], object], path: str) -> None:
    # Cleanup after the switch is not fatal: the new version is already published, and the
    # next write retries. Only the path is logged, never file contents.
    try:
        remove(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("could not remove %s: %s", path, exc.strerror or exc)


def _remove_if_symlink(path: str) -> None:
    try:
        if stat.S_ISLNK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

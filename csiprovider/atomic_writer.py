"""Atomic projection of a set of files into a directory (the kubelet AtomicWriter layout).

Readers (pods) must never see half of an update: a new password beside an old username.
The layout makes one `rename(2)` switch the whole set:

    <target>/..data            -> ..2026_11_23_10_00_00.123456789   (symlink)
    <target>/..2026_11_23_...  the payload, a real directory
    <target>/<name>            -> ..data/<name>                     (one per top-level name)

`write_atomic(target, payload)`:

 1. Validate every path (relative, clean, no `..` element, not starting with `..`). Any bad
    path fails the call before anything is written.
 2. Read `..data` to find the current timestamped directory, if any.
 3. List the user-visible top-level names the old set has and the new one lacks.
 4. Compare the new payload (content and mode) with the old directory; if equal and
    nothing is to be removed, stop: a no-op must not wake inotify watchers.
 5. Create a fresh hidden timestamped directory, mode 0755 whatever the umask.
 6. Write each file there with its exact mode, fsync it; fsync every directory written,
    so after a power cut the data the symlink points at is on disk.
 7. Remove top-level plain files/directories with a payload name (left by a provider that
    wrote directly, pre-AtomicWriter), then create the missing `<name> -> ..data/<name>`
    symlinks. They resolve through `..data`, so they show the old set until the swap.
 8. Point a new symlink `..data_tmp` at the new directory.
 9. Rename `..data_tmp` over `..data`: the atomic switch. Then fsync the target directory.
10. Remove the user-visible symlinks of names no longer in the payload.
11. Remove the old timestamped directory and any `..` directory a crashed writer left.

A crash at any step leaves `..data` pointing at a complete set (the old one before 9, the
new one after); leftovers from the crash are cleaned by the next write.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DATA_DIR = "..data"
NEW_DATA_DIR = "..data_tmp"
MAX_PATH = 4096
MAX_NAME = 255


@dataclass(frozen=True)
class FileProjection:
    """One file of the payload."""

    data: bytes = field(repr=False)
    mode: int


class PayloadError(ValueError):
    """A payload path the driver would refuse; the message names the path only."""


def validate_path(path: str) -> None:
    """Apply the driver's rules for a file path inside the volume."""
    if not path:
        raise PayloadError("invalid path: must not be empty")
    if path.startswith("/"):
        raise PayloadError(f"invalid path: must be relative path: {path}")
    if len(path) > MAX_PATH:
        raise PayloadError(f"invalid path: must be less than or equal to {MAX_PATH} characters")
    parts = path.split("/")
    for part in parts:
        if part == "..":
            raise PayloadError(f"invalid path: must not contain '..': {path}")
        if len(part) > MAX_NAME:
            raise PayloadError(
                f"invalid path: filenames must be less than or equal to {MAX_NAME} characters"
            )
    if parts[0].startswith(".."):
        raise PayloadError(f"invalid path: must not start with '..': {path}")
    if any(part in ("", ".") for part in parts):
        raise PayloadError(
            f"invalid path: must be clean (no '.' element, '//' or trailing '/'): {path}"
        )


def write_atomic(target_dir: str | os.PathLike[str], payload: Mapping[str, FileProjection]) -> bool:
    """Make `target_dir` show exactly `payload`; return False when it already did."""
    for path in payload:  # 1
        validate_path(path)
    target = Path(target_dir)
    if not target.is_dir():
        if target.exists():
            raise NotADirectoryError(f"target {target} is not a directory")
        raise FileNotFoundError(f"target {target} does not exist")

    old_name = _current_dir(target)  # 2
    old_dir = target / old_name if old_name else None
    new_top = {p.split("/", 1)[0] for p in payload}
    to_remove: set[str] = set()
    if old_dir is not None:
        to_remove = {n for n in _names(old_dir) if n not in new_top}  # 3
        if not to_remove and _matches(old_dir, payload):  # 4
            return False

    new_dir = Path(tempfile.mkdtemp(dir=target, prefix=time.strftime("..%Y_%m_%d_%H_%M_%S.")))  # 5
    try:
        os.chmod(new_dir, 0o755)
        _write_payload(new_dir, payload)  # 6
        _link_visible(target, new_top)  # 7
        tmp_link = target / NEW_DATA_DIR  # 8
        if tmp_link.is_symlink() or tmp_link.exists():
            tmp_link.unlink()
        os.symlink(new_dir.name, tmp_link)
        os.rename(tmp_link, target / DATA_DIR)  # 9
    except BaseException:
        shutil.rmtree(new_dir, ignore_errors=True)
        raise
    _fsync_dir(target)

    for name in to_remove:  # 10
        visible = target / name
        if visible.is_symlink():
            visible.unlink()
    for entry in os.listdir(target):  # 11
        if entry.startswith("..") and entry not in (DATA_DIR, new_dir.name):
            stale = target / entry
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
            elif entry == NEW_DATA_DIR:
                stale.unlink(missing_ok=True)
    return True


def _current_dir(target: Path) -> str | None:
    try:
        name = os.readlink(target / DATA_DIR)
    except (FileNotFoundError, OSError):
        return None
    return name if (target / name).is_dir() else None


def _names(directory: Path) -> set[str]:
    return set(os.listdir(directory))


def _matches(old_dir: Path, payload: Mapping[str, FileProjection]) -> bool:
    """Whether the old directory holds exactly this payload, modes included."""
    on_disk: set[str] = set()
    for root, _dirs, files in os.walk(old_dir):
        for name in files:
            on_disk.add(os.path.relpath(os.path.join(root, name), old_dir))
    if on_disk != set(payload):
        return False
    for path, projection in payload.items():
        full = old_dir / path
        try:
            if stat.S_IMODE(full.lstat().st_mode) != projection.mode:
                return False
            if full.read_bytes() != projection.data:
                return False
        except OSError:
            return False
    return True


def _write_payload(directory: Path, payload: Mapping[str, FileProjection]) -> None:
    dirs = {directory}
    for path, projection in payload.items():
        full = directory / path
        for parent in reversed(full.relative_to(directory).parents[:-1]):
            sub = directory / parent
            if sub not in dirs:
                sub.mkdir(mode=0o755, exist_ok=True)
                os.chmod(sub, 0o755)
                dirs.add(sub)
        fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            view = memoryview(projection.data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, projection.mode)  # exact mode, whatever the umask
            os.fsync(fd)
        finally:
            os.close(fd)
    for sub in dirs:
        _fsync_dir(sub)


def _link_visible(target: Path, names: set[str]) -> None:
    for name in names:
        visible = target / name
        if visible.is_symlink():
            continue
        if visible.is_dir():
            shutil.rmtree(visible)
        elif visible.exists():
            visible.unlink()
        os.symlink(f"{DATA_DIR}/{name}", visible)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

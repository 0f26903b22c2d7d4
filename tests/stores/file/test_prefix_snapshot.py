"""A `file` prefix is read as one snapshot: when the source directory is swapped atomically
(`conf -> ..data -> ..<timestamp>/`, the layout of a Kubernetes Secret volume and of our own
writer), every Mount gets the files of one version, never a mix and never a partial set."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
import pytest

from csiprovider.errors import MountError
from csiprovider.model import Encoding, MountObject
from csiprovider.stores.file import backend as file_backend
from csiprovider.stores.file.backend import FileBackend
from csiprovider.stores.file.source import FileSource
from testkit.requests import mount_request

NAMES = ("a", "b", "c")
GUARD = 120.0  # seconds: against a hang, never the thing asserted

# Publishes generation after generation the way kubelet's AtomicWriter does: a new hidden
# directory, a new ..data link renamed over the old one, then the old directory removed.
SWAPPER = """
import os, shutil, sys
ns, n = sys.argv[1], 1
print("ready", flush=True)
while True:
    n += 1
    new = os.path.join(ns, f"..gen_{n:08d}")
    os.mkdir(new)
    for name in ("a", "b", "c"):
        with open(os.path.join(new, name), "w") as f:
            f.write(str(n))
    os.makedirs(os.path.join(new, "sub"))
    with open(os.path.join(new, "sub", "d"), "w") as f:
        f.write(str(n))
    os.symlink(os.path.basename(new), os.path.join(ns, "..data_tmp"))
    old = os.readlink(os.path.join(ns, "..data"))
    os.rename(os.path.join(ns, "..data_tmp"), os.path.join(ns, "..data"))
    shutil.rmtree(os.path.join(ns, old))
"""


def prefix_obj(path: str, namespace: str = "default") -> MountObject:
    return MountObject(
        index=0,
        backend="file",
        object_name="conf",
        file_name="conf",
        mode=0o644,
        encoding=Encoding.UTF8,
        source=FileSource(namespace, path, listing=True),
        spec_json="{}",
    )


def layout(ns: Path) -> None:
    """ns/conf -> ..data -> ..gen_00000001/{a,b,c,sub/d}, each holding "1"."""
    first = ns / "..gen_00000001"
    (first / "sub").mkdir(parents=True)
    for name in (*NAMES, "sub/d"):
        (first / name).write_text("1")
    os.symlink(first.name, ns / "..data")
    os.symlink("..data", ns / "conf")


# 1: past FileBackend.HELD_FILES files are read at once rather than held open.
@pytest.mark.parametrize("held", [256, 1])
def test_prefix_swapped_atomically_is_read_as_one_snapshot(
    file_root: Path, held: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(file_backend, "HELD_FILES", held)
    ns = file_root / "default"
    layout(ns)
    backend = FileBackend(file_root)
    obj = prefix_obj("conf")
    assert backend.fetch(obj) == {"a": b"1", "b": b"1", "c": b"1", "sub/d": b"1"}

    proc = subprocess.Popen(
        [sys.executable, "-c", SWAPPER, str(ns)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    outcomes: Counter[str] = Counter()
    generations: set[bytes] = set()
    try:
        # 2000 fetches, and until 20 generations were read whole: progress counted, not
        # time (a busy machine takes longer); the guard only stops a swapper that hung.
        guard = time.monotonic() + GUARD
        while sum(outcomes.values()) < 2000 or len(generations) < 20:
            assert time.monotonic() < guard, (dict(outcomes), len(generations))
            try:
                items = backend.fetch(obj)
            except MountError as exc:
                outcomes[exc.code.name] += 1
                continue
            except Exception as exc:  # the daemon would answer INTERNAL
                outcomes[f"INTERNAL ({type(exc).__name__})"] += 1
                continue
            assert isinstance(items, dict)
            values = set(items.values())
            if sorted(items) != sorted((*NAMES, "sub/d")):
                outcomes["partial"] += 1
            elif len(values) != 1:
                outcomes["mixed"] += 1
            else:
                outcomes["snapshot"] += 1
                generations |= values
    finally:
        proc.kill()
        _, err = proc.communicate()
    assert proc.returncode == -9, err.decode()  # the swapper ran the whole time
    # Swapped faster than any real source (hundreds a second), a fetch may run out of
    # attempts: UNAVAILABLE, which the driver retries. Never a mixed or partial set.
    assert set(outcomes) <= {"snapshot", "UNAVAILABLE"}, dict(outcomes)
    assert outcomes["UNAVAILABLE"] <= sum(outcomes.values()) // 100, dict(outcomes)
    assert outcomes["snapshot"] >= 100 and len(generations) >= 20, (
        dict(outcomes),
        len(generations),
    )


def test_prefix_symlink_loop_is_invalid_argument(file_root: Path) -> None:
    ns = file_root / "default"
    os.symlink("loop2", ns / "loop1")
    os.symlink("loop1", ns / "loop2")
    with pytest.raises(MountError) as info:
        FileBackend(file_root).fetch(prefix_obj("loop1"))
    assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "objects[0] (objectName 'conf')" in info.value.message
    assert "too many symlinks" in info.value.message


def test_prefix_confinement_still_holds(file_root: Path) -> None:
    ns = file_root / "default"
    # The prefix itself, or a file in it, resolving into another namespace is refused.
    os.symlink(file_root / "other", ns / "theirs")
    (ns / "mixed").mkdir()
    (ns / "mixed" / "mine").write_text("mine")
    os.symlink(file_root / "other" / "theirs", ns / "mixed" / "sneaky")
    for path, where in (("theirs", "prefix 'theirs'"), ("mixed", "'mixed/sneaky'")):
        with pytest.raises(MountError) as info:
            FileBackend(file_root).fetch(prefix_obj(path))
        assert info.value.code is grpc.StatusCode.PERMISSION_DENIED, path
        assert where in info.value.message and "outside namespace 'default'" in (info.value.message)
        assert "other-namespace-secret" not in info.value.message
    # Symlinks inside the namespace are followed; dangling ones and links to directories
    # are not files of the prefix.
    os.symlink("../db/username", ns / "mixed" / "user")
    os.unlink(ns / "mixed" / "sneaky")
    os.symlink("nowhere", ns / "mixed" / "dangling")
    os.symlink("../db", ns / "mixed" / "dir")
    assert FileBackend(file_root).fetch(prefix_obj("mixed")) == {
        "mine": b"mine",
        "user": b"app_user",
    }


def test_missing_prefix_is_not_found(file_root: Path) -> None:
    for path in ("nope", "db/username"):
        with pytest.raises(MountError) as info:
            FileBackend(file_root).fetch(prefix_obj(path))
        assert info.value.code is grpc.StatusCode.NOT_FOUND
        assert f"prefix {path!r} is not a directory" in info.value.message


async def test_prefix_symlink_loop_through_the_daemon_is_invalid_argument(
    stub: Any, file_root: Path
) -> None:
    ns = file_root / "default"
    os.symlink("loop2", ns / "loop1")
    os.symlink("loop1", ns / "loop2")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Mount(
            mount_request([{"objectName": "conf", "backend": "file", "prefix": "loop1"}])
        )
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "objectName 'conf'" in (info.value.details() or "")


def test_prefix_on_a_volume_written_atomically_lists_the_payload_only(file_root: Path) -> None:
    """A prefix on a kubelet-style volume (a Secret mount, or ours) gives each file once:
    the writer's `..data` and `..<timestamp>` entries are not payload."""
    from csiprovider.atomic_writer import FileProjection, write_atomic

    volume = file_root / "default" / "mounted"
    volume.mkdir()
    write_atomic(str(volume), {"a": FileProjection(b"1", 0o644), "b": FileProjection(b"2", 0o644)})
    fetched = FileBackend(file_root).fetch(prefix_obj("mounted"))
    assert fetched == {"a": b"1", "b": b"2"}

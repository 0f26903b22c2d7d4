"""The atomic writer: the kubelet layout, exact modes, no-op detection, and consistency
under concurrent readers and SIGKILL at random points."""

from __future__ import annotations

import os
import random
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from csiprovider.atomic_writer import FileProjection, PayloadError, validate_path, write_atomic

ROOT = Path(__file__).resolve().parents[1]


def payload(files: dict[str, str], mode: int = 0o644) -> dict[str, FileProjection]:
    return {p: FileProjection(data=c.encode(), mode=mode) for p, c in files.items()}


def visible(target: Path) -> dict[str, str]:
    return {n: (target / n).read_text() for n in sorted(os.listdir(target))
            if not n.startswith("..") and (target / n).is_file()}


def hidden_dirs(target: Path) -> list[str]:
    return sorted(n for n in os.listdir(target) if n.startswith("..") and n != "..data")


def test_first_write_creates_layout_with_exact_modes(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        assert write_atomic(tmp_path, {**payload({"a": "1"}, 0o644), **payload({"b": "2"}, 0o440)})
    finally:
        os.umask(old)
    assert visible(tmp_path) == {"a": "1", "b": "2"}
    assert os.readlink(tmp_path / "a") == "..data/a"
    data = os.readlink(tmp_path / "..data")
    assert data.startswith("..") and (tmp_path / data).is_dir()
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o440
    assert stat.S_IMODE((tmp_path / data).stat().st_mode) == 0o755


def test_update_swaps_and_removes_old(tmp_path: Path) -> None:
    write_atomic(tmp_path, payload({"a": "1", "b": "2"}))
    first = os.readlink(tmp_path / "..data")
    assert write_atomic(tmp_path, payload({"a": "changed", "c": "3"}))
    assert visible(tmp_path) == {"a": "changed", "c": "3"}
    assert not os.path.lexists(tmp_path / "b")
    assert hidden_dirs(tmp_path) == [os.readlink(tmp_path / "..data")] != [first]


def test_unchanged_payload_is_a_no_op(tmp_path: Path) -> None:
    write_atomic(tmp_path, payload({"a": "1"}))
    before = os.readlink(tmp_path / "..data")
    assert write_atomic(tmp_path, payload({"a": "1"})) is False
    assert os.readlink(tmp_path / "..data") == before
    assert write_atomic(tmp_path, payload({"a": "1"}, 0o600)) is True  # a mode change counts


def test_nested_paths(tmp_path: Path) -> None:
    write_atomic(tmp_path, payload({"certs/tls.crt": "c", "certs/tls.key": "k", "top": "t"}))
    assert (tmp_path / "certs" / "tls.key").read_text() == "k"
    assert os.readlink(tmp_path / "certs") == "..data/certs"
    write_atomic(tmp_path, payload({"top": "t"}))
    assert not os.path.lexists(tmp_path / "certs")


def test_plain_file_left_by_a_provider_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("written directly")
    write_atomic(tmp_path, payload({"a": "atomic"}))
    assert (tmp_path / "a").is_symlink() and (tmp_path / "a").read_text() == "atomic"


def test_empty_payload_clears_volume(tmp_path: Path) -> None:
    write_atomic(tmp_path, payload({"a": "1"}))
    assert write_atomic(tmp_path, {})
    assert visible(tmp_path) == {}


@pytest.mark.parametrize("bad", ["/abs", "..", "../x", "a/../b", "..hidden", "a//b", "./a",
                                 "a/", "", "x" * 256, "a/./b"])
def test_invalid_paths_write_nothing(tmp_path: Path, bad: str) -> None:
    with pytest.raises(PayloadError):
        validate_path(bad)
    with pytest.raises(PayloadError):
        write_atomic(tmp_path, payload({"ok": "1", bad: "2"}))
    assert os.listdir(tmp_path) == []


def test_missing_target_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "absent", payload({"a": "1"}))
    assert not (tmp_path / "absent").exists()


VERSION_A = ("x", "y", "z")
VERSION_B = ("x", "y", "w")  # a different set of names, so removals happen too


def version(n: int) -> dict[str, FileProjection]:
    names = VERSION_A if n % 2 == 0 else VERSION_B
    return payload({name: f"{n}" for name in names})


def check_consistent(target: Path) -> int:
    """The set behind ..data is one complete version; visible names read from it."""
    data = target / os.readlink(target / "..data")
    names = sorted(os.listdir(data))
    contents = {(data / n).read_text() for n in names}
    assert len(contents) == 1, f"mixed set {names}: {contents}"
    n = int(contents.pop())
    assert tuple(sorted(names)) == tuple(sorted(VERSION_A if n % 2 == 0 else VERSION_B))
    for name in os.listdir(target):
        if not name.startswith("..") and (target / name).exists():
            assert (target / name).read_text() == str(n)
    return n


WRITER = """
import sys
from csiprovider.atomic_writer import FileProjection, write_atomic
target, n = sys.argv[1], int(sys.argv[2])
print("ready", flush=True)
while True:
    names = ("x", "y", "z") if n % 2 == 0 else ("x", "y", "w")
    write_atomic(target, {name: FileProjection(data=str(n).encode(), mode=0o644) for name in names})
    n += 1
"""


def test_sigkill_at_random_points_leaves_a_complete_set(tmp_path: Path) -> None:
    rng = random.Random(1234)
    write_atomic(tmp_path, version(0))
    n = 1
    for _ in range(120):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(n)],
                                cwd=ROOT, stdout=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0, 0.02))
        proc.kill()
        proc.wait()
        proc.stdout.close()
        n = check_consistent(tmp_path) + 1
    assert write_atomic(tmp_path, version(n))
    check_consistent(tmp_path)
    assert hidden_dirs(tmp_path) == [os.readlink(tmp_path / "..data")]
    assert visible(tmp_path) == {name: str(n) for name in (VERSION_A if n % 2 == 0 else VERSION_B)}


def test_concurrent_reader_never_sees_a_mix(tmp_path: Path) -> None:
    write_atomic(tmp_path, version(0))
    stop = threading.Event()
    seen: list[tuple[str, ...]] = []

    def writer() -> None:
        n = 1
        while not stop.is_set():
            write_atomic(tmp_path, version(n))
            n += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            # One snapshot: open the data directory once, read every file from it. ..data
            # itself must exist at every instant: a reader never finds the volume empty.
            before = os.readlink(tmp_path / "..data")
            try:
                fd = os.open(tmp_path / before, os.O_RDONLY | os.O_DIRECTORY)
            except FileNotFoundError:
                continue  # swapped and removed between readlink and open
            try:
                names = sorted(os.listdir(fd))
                values = []
                for name in names:
                    f = os.open(name, os.O_RDONLY, dir_fd=fd)
                    values.append(os.read(f, 64).decode())
                    os.close(f)
            except FileNotFoundError:
                continue  # the set was removed after a swap: read again, as a pod would
            finally:
                os.close(fd)
            if os.readlink(tmp_path / "..data") != before:
                continue  # swapped while reading: the old set may be half deleted; read again
            assert len(set(values)) == 1, f"mixed read {names}: {values}"
            assert tuple(names) in (tuple(sorted(VERSION_A)), tuple(sorted(VERSION_B)))
            seen.append(tuple(values))
    finally:
        stop.set()
        thread.join()
    assert len({v[0] for v in seen}) > 10  # the reader really raced many versions

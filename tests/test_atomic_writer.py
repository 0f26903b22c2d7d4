"""The atomic writer as a pod sees it: the kubelet layout, exact modes, no-op detection, path
rules, and one complete version at every instant, under concurrent readers and under SIGKILL
at random points of a write."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from csiprovider import atomic_writer
from csiprovider.atomic_writer import (
    FileProjection,
    PayloadError,
    TargetBusy,
    validate_path,
    write_atomic,
)

ROOT = Path(__file__).resolve().parents[1]


def files(contents: dict[str, str], mode: int = 0o644) -> dict[str, FileProjection]:
    return {p: FileProjection(data=c.encode(), mode=mode) for p, c in contents.items()}


def visible(target: Path) -> dict[str, str]:
    """Every user-visible file, read the way a pod would: through the top-level names."""
    found: dict[str, str] = {}
    for dirpath, _dirs, names in os.walk(target, followlinks=True):
        rel = Path(dirpath).relative_to(target)
        if rel.parts and rel.parts[0].startswith(".."):
            continue
        for name in names:
            if rel.parts or not name.startswith(".."):
                found[str(rel / name)] = (Path(dirpath) / name).read_text()
    return found


def hidden(target: Path) -> list[str]:
    return sorted(n for n in os.listdir(target) if n.startswith(".."))


def version_dir(target: Path) -> Path:
    return target / os.readlink(target / "..data")


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_077() -> Iterator[None]:
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def test_first_write_creates_data_link_and_exact_modes_under_umask_077(
    tmp_path: Path, umask_077: None
) -> None:
    payload = {**files({"a": "1"}, 0o644), **files({"b": "2"}, 0o440)}
    payload.update(files({"dir/c": "3"}, 0o755))
    assert write_atomic(tmp_path, payload) is True

    assert visible(tmp_path) == {"a": "1", "b": "2", "dir/c": "3"}
    assert os.readlink(tmp_path / "a") == "..data/a"
    assert os.readlink(tmp_path / "dir") == "..data/dir"
    data = os.readlink(tmp_path / "..data")
    assert data.startswith("..") and "/" not in data
    assert hidden(tmp_path) == sorted([data, "..data"])
    # Exact modes although the umask would strip group and other bits.
    assert mode_of(tmp_path / "a") == 0o644
    assert mode_of(tmp_path / "b") == 0o440
    assert mode_of(tmp_path / "dir" / "c") == 0o755
    assert mode_of(tmp_path / data) == 0o755
    assert mode_of(tmp_path / data / "dir") == 0o755


def test_changed_content_swaps_version_and_removes_old_dir(tmp_path: Path) -> None:
    write_atomic(tmp_path, files({"a": "1", "b": "2"}))
    first = os.readlink(tmp_path / "..data")
    assert write_atomic(tmp_path, files({"a": "changed", "b": "2"})) is True
    second = os.readlink(tmp_path / "..data")
    assert second != first
    assert visible(tmp_path) == {"a": "changed", "b": "2"}
    assert hidden(tmp_path) == sorted([second, "..data"])  # old version directory is gone


def test_files_dropped_from_payload_disappear(tmp_path: Path) -> None:
    write_atomic(tmp_path, files({"a": "1", "b": "2", "sub/c": "3"}))
    assert write_atomic(tmp_path, files({"a": "1", "d": "4"})) is True
    assert visible(tmp_path) == {"a": "1", "d": "4"}
    assert not os.path.lexists(tmp_path / "b")
    assert not os.path.lexists(tmp_path / "sub")


def test_nested_file_dropped_inside_kept_directory_disappears(tmp_path: Path) -> None:
    write_atomic(tmp_path, files({"sub/a": "1", "sub/b": "2"}))
    assert write_atomic(tmp_path, files({"sub/a": "1"})) is True
    assert visible(tmp_path) == {"sub/a": "1"}


def test_unchanged_payload_is_a_no_op(tmp_path: Path) -> None:
    write_atomic(tmp_path, files({"a": "1", "sub/b": "2"}))
    before = os.readlink(tmp_path / "..data")
    listing = hidden(tmp_path)
    assert write_atomic(tmp_path, files({"a": "1", "sub/b": "2"})) is False
    assert os.readlink(tmp_path / "..data") == before
    assert hidden(tmp_path) == listing  # no new version directory


def test_mode_only_change_publishes_new_version(tmp_path: Path) -> None:
    write_atomic(tmp_path, files({"a": "1"}, 0o644))
    before = os.readlink(tmp_path / "..data")
    assert write_atomic(tmp_path, files({"a": "1"}, 0o600)) is True
    assert os.readlink(tmp_path / "..data") != before
    assert mode_of(tmp_path / "a") == 0o600


def test_nested_paths_link_top_level_directory(tmp_path: Path) -> None:
    write_atomic(tmp_path, files({"certs/tls.crt": "c", "certs/ca/root.pem": "r", "top": "t"}))
    assert os.readlink(tmp_path / "certs") == "..data/certs"
    assert (tmp_path / "certs").is_symlink()
    assert visible(tmp_path) == {"certs/tls.crt": "c", "certs/ca/root.pem": "r", "top": "t"}
    write_atomic(tmp_path, files({"top": "t"}))
    assert not os.path.lexists(tmp_path / "certs")


def test_plain_file_and_directory_left_by_provider_are_replaced(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("written directly")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "old").write_text("written directly")
    (tmp_path / "unrelated").write_text("not in the payload")
    assert write_atomic(tmp_path, files({"a": "atomic", "d/new": "atomic"})) is True
    assert os.readlink(tmp_path / "a") == "..data/a"
    assert os.readlink(tmp_path / "d") == "..data/d"
    assert visible(tmp_path) == {
        "a": "atomic",
        "d/new": "atomic",
        "unrelated": "not in the payload",
    }


def test_plain_file_is_replaced_even_when_data_already_matches(tmp_path: Path) -> None:
    write_atomic(tmp_path, files({"a": "1"}))
    (tmp_path / "a").unlink()
    (tmp_path / "a").write_text("stale copy")
    assert write_atomic(tmp_path, files({"a": "1"})) is True
    assert (tmp_path / "a").is_symlink() and (tmp_path / "a").read_text() == "1"


def test_empty_payload_removes_every_visible_name(tmp_path: Path) -> None:
    write_atomic(tmp_path, files({"a": "1", "sub/b": "2"}))
    assert write_atomic(tmp_path, {}) is True
    assert visible(tmp_path) == {}
    assert os.listdir(version_dir(tmp_path)) == []
    assert write_atomic(tmp_path, {}) is False


@pytest.mark.parametrize(
    "bad",
    [
        "/abs",
        "..",
        "../x",
        "a/../b",
        "..hidden",
        "...",
        "a//b",
        "./a",
        "a/.",
        "a/./b",
        "a/",
        "",
        ".",
        "x" * 256,
        "d/" + "x" * 256,
        "/".join(["d"] * 2049),
        "nul\0byte",
    ],
)
def test_invalid_paths_raise_and_write_nothing(tmp_path: Path, bad: str) -> None:
    with pytest.raises(PayloadError):
        validate_path(bad)
    with pytest.raises(PayloadError) as info:
        write_atomic(tmp_path, files({"ok": "secret-ok", bad: "secret-bad"}))
    assert "secret" not in str(info.value)  # names the path, never the contents
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("good", ["a", ".hidden", "a/..b", "a/.b", "x" * 255, "d/e/f", "é" * 127])
def test_unusual_valid_paths_are_accepted(tmp_path: Path, good: str) -> None:
    validate_path(good)
    assert write_atomic(tmp_path, files({good: "v"})) is True
    assert visible(tmp_path) == {good: "v"}


def test_lengths_count_bytes_like_the_kernel(tmp_path: Path) -> None:
    with pytest.raises(PayloadError):
        validate_path("é" * 128)  # 128 characters, 256 bytes


def test_messages_keep_the_driver_wording() -> None:
    with pytest.raises(PayloadError, match=r"^invalid path: must not contain '\.\.': \.\./x$"):
        validate_path("../x")
    with pytest.raises(PayloadError, match=r"^invalid path: must be relative path: /etc/x$"):
        validate_path("/etc/x")


@pytest.mark.parametrize(
    "payload",
    [files({"a": "1"}, 0o4755), files({"a": "1"}, -1), files({"a": "1", "a/b": "2"})],
    ids=["setuid-mode", "negative-mode", "file-and-dir-clash"],
)
def test_bad_mode_or_clash_raises_and_writes_nothing(
    tmp_path: Path, payload: dict[str, FileProjection]
) -> None:
    with pytest.raises(PayloadError):
        write_atomic(tmp_path, payload)
    assert os.listdir(tmp_path) == []


def test_missing_or_non_directory_target_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "absent", files({"a": "1"}))
    assert not (tmp_path / "absent").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        write_atomic(tmp_path / "file", files({"a": "1"}))


def test_repr_never_shows_contents() -> None:
    assert "hunter2" not in repr(FileProjection(data=b"hunter2", mode=0o600))


def test_crash_leftovers_are_removed_by_next_write(tmp_path: Path) -> None:
    write_atomic(tmp_path, files({"a": "1"}))
    stale = tmp_path / "..2001_01_01_00_00_00.crashed1"
    stale.mkdir()
    (stale / "a").write_text("half written")
    os.symlink(stale.name, tmp_path / "..data_tmp")
    os.symlink("..data/gone", tmp_path / "gone")  # dangling: a crash between swap and cleanup
    # Same content: still a write, because a visible name has to go.
    assert write_atomic(tmp_path, files({"a": "1"})) is True
    assert hidden(tmp_path) == sorted([os.readlink(tmp_path / "..data"), "..data"])
    assert sorted(os.listdir(tmp_path)) == sorted(["..data", os.readlink(tmp_path / "..data"), "a"])


def test_data_link_to_a_foreign_directory_is_never_deleted(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("precious")
    target = tmp_path / "target"
    target.mkdir()
    os.symlink(str(outside), target / "..data")
    assert write_atomic(target, files({"a": "1"})) is True
    assert (outside / "keep").read_text() == "precious"
    assert visible(target) == {"a": "1"}


def test_failure_before_the_switch_keeps_old_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_atomic(tmp_path, files({"a": "old", "b": "old"}))
    before = hidden(tmp_path)

    def refuse(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "rename", refuse)
    with pytest.raises(OSError, match="No space"):
        write_atomic(tmp_path, files({"a": "new", "c": "new"}))
    monkeypatch.undo()
    assert hidden(tmp_path) == before  # new version directory and ..data_tmp removed
    assert (tmp_path / "a").read_text() == "old" and (tmp_path / "b").read_text() == "old"
    assert not (tmp_path / "c").exists()  # linked early, dangles until a switch: invisible
    assert write_atomic(tmp_path, files({"a": "new", "c": "new"})) is True
    assert visible(tmp_path) == {"a": "new", "c": "new"}


# Two alternating versions with different name sets, so every switch also adds and removes
# names, and different modes, so modes must be in place before a version is published.
VERSIONS = {"A": (("x", "y", "z"), 0o644), "B": (("x", "y", "w"), 0o600)}


def version(n: int) -> tuple[str, tuple[str, ...], int]:
    tag = "A" if n % 2 == 0 else "B"
    return (tag, *VERSIONS[tag])


def version_payload(n: int) -> dict[str, FileProjection]:
    tag, names, mode = version(n)
    return files({name: f"{tag}-{n}" for name in names}, mode)


WRITER = """
import sys
from csiprovider.atomic_writer import FileProjection, write_atomic
target, n = sys.argv[1], int(sys.argv[2])
versions = {"A": (("x", "y", "z"), 0o644), "B": (("x", "y", "w"), 0o600)}
print("ready", flush=True)
while True:
    tag = "A" if n % 2 == 0 else "B"
    names, mode = versions[tag]
    data = f"{tag}-{n}".encode()
    write_atomic(target, {name: FileProjection(data=data, mode=mode) for name in names})
    print(n, flush=True)
    n += 1
"""


class Writer:
    """A process writing versions n, n+1, ... into the target without end; it reports each
    finished write, so a test can wait for progress instead of guessing how long it takes."""

    def __init__(self, target: Path, n: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(target), str(n)],
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.written = 0
        self._progress = threading.Condition()
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        assert first == b"ready\n", self.proc.stderr.read() if self.proc.stderr else b""
        threading.Thread(target=self._count, daemon=True).start()

    def _count(self) -> None:
        assert self.proc.stdout is not None
        for _line in self.proc.stdout:
            with self._progress:
                self.written += 1
                self._progress.notify_all()

    def wait_for(self, writes: int) -> None:
        """Until this writer has finished `writes` writes (60 s is only a failure guard)."""
        with self._progress:
            done = self._progress.wait_for(
                lambda: self.written >= writes or self.proc.poll() is not None, timeout=60
            )
        assert done and self.proc.poll() is None, (self.written, self.stderr())

    def stderr(self) -> str:
        return (
            ""
            if self.proc.poll() is None or not self.proc.stderr
            else self.proc.stderr.read().decode()
        )

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        # Killed mid-loop, not dead of an exception: every write up to the kill succeeded.
        assert self.proc.returncode == -signal.SIGKILL, self.stderr()


def _env() -> dict[str, str]:
    path = (str(ROOT), os.environ.get("PYTHONPATH", ""))
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)}


CRASHER = """
import os, signal, sys
from csiprovider import atomic_writer
from csiprovider.atomic_writer import FileProjection, write_atomic
target = sys.argv[1]
versions = {"A": (("x", "y", "z"), 0o644), "B": (("x", "y", "w"), 0o600)}

def write(n):
    tag = "A" if n % 2 == 0 else "B"
    names, mode = versions[tag]
    data = f"{tag}-{n}".encode()
    write_atomic(target, {name: FileProjection(data=data, mode=mode) for name in names})

def traced(kill_at):
    steps = 0
    def trace(frame, event, arg):
        nonlocal steps
        if frame.f_code.co_filename != atomic_writer.__file__:
            return None
        if event == "line":
            steps += 1
            if steps == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        return trace
    sys.settrace(trace)
    return lambda: steps

for line in sys.stdin:
    command, n, arg = line.split()
    pid = os.fork()
    if pid == 0:
        steps = traced(int(arg))
        if command == "count":
            write(int(n))
            print(steps(), flush=True)
            os._exit(0)
        n = int(n)
        while True:
            write(n)
            n += 1
    _, status = os.waitpid(pid, 0)
    print(status, flush=True)
"""


class Crasher:
    """Writers that SIGKILL themselves at a chosen step of their write.

    A step is a line of csiprovider/atomic_writer.py executed (sys.settrace), so step k is
    the same point of the algorithm on any machine, however busy: a kill sent from outside
    after a random sleep lands wherever the scheduler happens to be. One process, started
    once, forks a writer per crash."""

    def __init__(self, target: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CRASHER, str(target)],
            cwd=ROOT,
            env=_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def _ask(self, command: str, n: int, arg: int) -> list[str]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{command} {n} {arg}\n")
        self.proc.stdin.flush()
        lines = [self.proc.stdout.readline().strip()]
        if command == "count":
            lines.append(self.proc.stdout.readline().strip())
        return lines

    def steps_of_one_write(self, n: int) -> int:
        """Writes version n untouched and returns the steps it took."""
        steps, status = self._ask("count", n, 0)
        assert int(status) == 0
        return int(steps)

    def crash(self, n: int, at_step: int) -> None:
        """Writes versions n, n+1, ... and is SIGKILLed at step `at_step` of them."""
        (status,) = self._ask("crash", n, at_step)
        assert os.WIFSIGNALED(int(status)), status
        assert os.WTERMSIG(int(status)) == signal.SIGKILL, status

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(30) == 0


def check_one_complete_version(target: Path) -> int:
    """Through ..data: exactly one version's names, contents and modes. Through the top-level
    names: every name of that version resolves to it; any other name is one of our links
    left dangling by a crash (so it cannot be read at all), never a file of another version.
    Returns the version counter n."""
    data = version_dir(target)
    names = sorted(os.listdir(data))
    contents = {(data / name).read_text() for name in names}
    assert len(contents) == 1, f"mixed set behind ..data: {names} {contents}"
    tag, n_text = contents.pop().split("-")
    n = int(n_text)
    expected_tag, expected_names, mode = version(n)
    assert tag == expected_tag
    assert names == sorted(expected_names), f"incomplete set behind ..data: {names}"
    for name in names:
        assert mode_of(data / name) == mode
        assert (target / name).read_text() == f"{tag}-{n}"  # visible through its top-level link
    for name in os.listdir(target):
        if name.startswith(".."):
            continue
        assert os.readlink(target / name) == f"..data/{name}"
        if name not in expected_names:
            assert not (target / name).exists()
    return n


def test_sigkill_at_every_step_of_a_write_leaves_one_complete_version(tmp_path: Path) -> None:
    write_atomic(tmp_path, version_payload(0))
    crasher = Crasher(tmp_path)
    try:
        steps = crasher.steps_of_one_write(1)
        n = check_one_complete_version(tmp_path)
        assert n == 1
        advanced = debris = 0
        # Every step of a write, and on into the next one, each time from a clean volume
        # (a clean write first, which also sweeps what the last crash left).
        for at_step in range(1, 2 * steps + 1):
            n += 1
            assert write_atomic(tmp_path, version_payload(n)) is True
            assert hidden(tmp_path) == sorted(["..data", os.readlink(tmp_path / "..data")])
            crasher.crash(n + 1, at_step)
            now = check_one_complete_version(tmp_path)
            assert now >= n
            advanced += now > n
            n = now
            current = os.readlink(tmp_path / "..data")
            debris += any(h not in ("..data", current) for h in hidden(tmp_path))
        # Then crashes on top of crashes: each write starts with what the last one left.
        for at_step in range(1, 2 * steps + 1, 3):
            crasher.crash(n + 1, at_step)
            now = check_one_complete_version(tmp_path)
            assert now >= n
            n = now
    finally:
        crasher.close()

    # The kills landed before and after the switch, and mid-write (leftovers): the same
    # split on any machine, since a step is a point of the algorithm, not a moment.
    assert advanced >= steps // 2 and debris >= steps // 2, (steps, advanced, debris)

    # A clean write on top of whatever the last crash left: exactly the expected set.
    assert write_atomic(tmp_path, version_payload(n + 1)) is True
    assert check_one_complete_version(tmp_path) == n + 1
    tag, names, _ = version(n + 1)
    assert visible(tmp_path) == {name: f"{tag}-{n + 1}" for name in names}
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["..data", os.readlink(tmp_path / "..data"), *names]
    )


def test_concurrent_reader_never_sees_a_mixed_set(tmp_path: Path) -> None:
    write_atomic(tmp_path, version_payload(0))
    writer = Writer(tmp_path, 1)
    seen: set[int] = set()
    complete_rounds = mixed_top_level = 0
    try:
        # Until the reader has raced the writer through more than 10 versions (60 s is only
        # a failure guard: on a busy machine both just take longer).
        guard = time.monotonic() + 60
        while len(seen) <= 10 or complete_rounds <= 10:
            assert time.monotonic() < guard, ("the reader did not race the writer", seen)
            # A pod that resolves ..data once and reads every file of that directory sees one
            # whole version. A published version directory never changes; it is only deleted
            # after ..data has moved on, so a short read means a switch happened meanwhile.
            before = os.readlink(tmp_path / "..data")
            values: list[str] = []
            names: list[str] = []
            try:
                fd = os.open(tmp_path / before, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    names = sorted(os.listdir(fd))
                    for name in names:
                        f = os.open(name, os.O_RDONLY, dir_fd=fd)
                        try:
                            values.append(os.read(f, 64).decode())
                        finally:
                            os.close(f)
                finally:
                    os.close(fd)
                short = False
            except FileNotFoundError:
                short = True
            after = os.readlink(tmp_path / "..data")
            assert len(set(values)) <= 1, f"mixed read through ..data: {names} {values}"
            if short or after != before:
                assert after != before, "a file vanished although ..data never moved"
            else:
                tag, n_text = values[0].split("-")
                assert names == sorted(version(int(n_text))[1]) and tag == version(int(n_text))[0]
                seen.add(int(n_text))
                complete_rounds += 1

            # Reading the top-level names one by one resolves ..data once per name, so it can
            # mix versions, but only across a switch.
            before = os.readlink(tmp_path / "..data")
            read: dict[str, str] = {}
            for name in sorted(os.listdir(tmp_path)):
                # A dangling name belongs to a version that was not current at that moment.
                if not name.startswith(".."):
                    with contextlib.suppress(FileNotFoundError):
                        read[name] = (tmp_path / name).read_text()
            after = os.readlink(tmp_path / "..data")
            if len(set(read.values())) > 1:
                mixed_top_level += 1
                assert after != before, f"mixed top-level read without a switch: {read}"
            elif after == before:
                value = next(iter(read.values()))
                assert sorted(read) == sorted(version(int(value.split("-")[1]))[1])
    finally:
        writer.kill()
    check_one_complete_version(tmp_path)


def test_unchanged_write_still_sweeps_crash_leftovers(tmp_path: Path) -> None:
    write_atomic(tmp_path, files({"a": "1"}))
    current = os.readlink(tmp_path / "..data")
    stale = tmp_path / "..2001_01_01_00_00_00.crashed2"
    stale.mkdir()
    (stale / "a").write_text("half written")
    os.symlink(stale.name, tmp_path / "..data_tmp")
    assert write_atomic(tmp_path, files({"a": "1"})) is False  # nothing new to publish
    assert hidden(tmp_path) == sorted(["..data", current])


def test_crash_in_the_first_write_is_swept_by_the_next(tmp_path: Path) -> None:
    # Killed between steps 8 and 9 of the very first write: no ..data yet.
    stale = tmp_path / "..2001_01_01_00_00_00.crashed3"
    stale.mkdir()
    (stale / "a").write_text("0")
    os.symlink(stale.name, tmp_path / "..data_tmp")
    os.symlink("..data/a", tmp_path / "a")
    assert write_atomic(tmp_path, files({"a": "1", "b": "1"})) is True
    assert visible(tmp_path) == {"a": "1", "b": "1"}
    assert hidden(tmp_path) == sorted(["..data", os.readlink(tmp_path / "..data")])


@contextlib.contextmanager
def locked_elsewhere(target: Path) -> Iterator[None]:
    """The target's lock, held as another process's writer would hold it."""
    fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def test_a_write_in_progress_elsewhere_is_waited_for_and_never_swept(tmp_path: Path) -> None:
    write_atomic(tmp_path, files({"a": "1"}))
    done = threading.Event()
    results: list[bool] = []
    with locked_elsewhere(tmp_path):
        # The other writer is between its steps 5 and 9: its new directory is complete but
        # not published yet. A writer that swept it now would publish nothing of it.
        theirs = tmp_path / "..2099_01_01_00_00_00.theirs1"
        theirs.mkdir()
        (theirs / "a").write_text("2")

        def ours() -> None:
            results.append(write_atomic(tmp_path, files({"a": "3"})))
            done.set()

        worker = threading.Thread(target=ours)
        worker.start()
        assert not done.wait(0.3), "the write did not wait for the lock"
        assert (theirs / "a").read_text() == "2"
        os.symlink(theirs.name, tmp_path / "..data_tmp")
        os.rename(tmp_path / "..data_tmp", tmp_path / "..data")  # their switch
        assert (tmp_path / "a").read_text() == "2"
    worker.join(60)
    assert results == [True]
    assert visible(tmp_path) == {"a": "3"}  # ours came after theirs, and swept theirs
    assert hidden(tmp_path) == sorted(["..data", os.readlink(tmp_path / "..data")])


def test_a_lock_held_too_long_raises_target_busy_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_atomic(tmp_path, files({"a": "1"}))
    before = sorted(os.listdir(tmp_path))
    monkeypatch.setattr(atomic_writer, "LOCK_TIMEOUT", 0.2)
    with locked_elsewhere(tmp_path), pytest.raises(TargetBusy, match="locked for more than"):
        write_atomic(tmp_path, files({"a": "2"}))
    assert sorted(os.listdir(tmp_path)) == before
    assert visible(tmp_path) == {"a": "1"}


def test_threads_writing_one_target_by_different_paths_take_turns(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    os.symlink(target, tmp_path / "alias")
    spellings = [target, tmp_path / "alias", Path(f"{target}/./")]
    write_atomic(target, version_payload(0))
    errors: list[BaseException] = []

    def writer(index: int) -> None:
        try:
            for n in range(index, index + 4 * 25, 4):
                write_atomic(spellings[index % len(spellings)], version_payload(n))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    check_one_complete_version(target)
    assert hidden(target) == sorted(["..data", os.readlink(target / "..data")])


def test_writers_in_two_processes_take_turns(tmp_path: Path) -> None:
    write_atomic(tmp_path, version_payload(0))
    writers = [Writer(tmp_path, 1), Writer(tmp_path, 100001)]
    try:
        for writer in writers:
            writer.wait_for(50)  # each took its turn 50 times; no write of either failed
    finally:
        for writer in writers:
            writer.kill()  # asserts each was still running: no write of either ever failed
    n = check_one_complete_version(tmp_path)
    # The kills may leave a half-written directory: the next write sweeps it.
    assert write_atomic(tmp_path, version_payload(n + 2)) is True
    assert hidden(tmp_path) == sorted(["..data", os.readlink(tmp_path / "..data")])

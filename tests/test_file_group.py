"""Provider-writes mode: files and directories group-owned by the pod's fsGroup (or the
SPC's fileGroup), so `filePermission: "0440"` serves a non-root pod, checked with reader
processes under another uid, in the group and outside it (setpriv)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from csiprovider.server import ServeConfig
from testkit.daemon import running
from testkit.requests import mount_request, pod_volume
from testkit.servers import KubeAPI

GROUP, READER, STRANGER = 4242, 5000, 5001
OBJECTS = [
    {
        "objectName": "db-password",
        "backend": "file",
        "path": "db/password",
        "filePermission": "0440",
    }
]


@pytest.fixture
def volume() -> Iterator[Path]:
    """A target outside pytest's 0700 temp root, so other uids can reach it."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        raise RuntimeError("this test needs root and setpriv (util-linux)")
    base = Path(tempfile.mkdtemp(prefix="csiprovider-group-"))
    base.chmod(0o755)
    yield pod_volume(base / "pods")
    shutil.rmtree(base)


def PODS(volume: Path) -> Path:
    """The kubelet pods directory of a `pod_volume`."""
    return volume.parents[4]


def read_as(uid: int, groups: list[int], path: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [
            "setpriv",
            f"--reuid={uid}",
            f"--regid={uid}",
            f"--groups={','.join(map(str, groups))}",
            "cat",
            str(path),
        ],
        capture_output=True,
        timeout=30,
    )


def check_readers(volume: Path) -> None:
    file = volume / "db-password"
    real = file.resolve()
    assert real.stat().st_gid == GROUP and real.stat().st_mode & 0o777 == 0o440
    assert real.parent.stat().st_gid == GROUP and volume.stat().st_gid == GROUP
    inside = read_as(READER, [GROUP], file)
    assert inside.returncode == 0 and inside.stdout == b"pw-0123456789"
    outside = read_as(STRANGER, [STRANGER], file)
    assert outside.returncode != 0 and b"Permission denied" in outside.stderr


async def test_the_pods_fs_group_owns_the_files(
    serve_config: Callable[..., ServeConfig], kube_api: KubeAPI, volume: Path
) -> None:
    kube_api.fs_groups[("default", "app-0")] = GROUP
    config = serve_config(
        write_mode="provider", kube_api_url=kube_api.url, kubelet_pods_dir=PODS(volume)
    )
    reads = kube_api.count("GET", "/namespaces/default/pods/app-0")
    try:
        async with running(config) as stubs:
            for _ in range(3):  # a republish reads no pod again
                await stubs["csiprovider"].Mount(mount_request(OBJECTS, target_path=str(volume)))
    finally:
        del kube_api.fs_groups[("default", "app-0")]
    assert kube_api.count("GET", "/namespaces/default/pods/app-0") - reads == 1
    check_readers(volume)


async def test_the_spcs_file_group_wins(
    serve_config: Callable[..., ServeConfig], volume: Path
) -> None:
    config = serve_config(write_mode="provider", kubelet_pods_dir=PODS(volume))
    async with running(config) as stubs:
        await stubs["csiprovider"].Mount(
            mount_request(OBJECTS, target_path=str(volume), extra={"fileGroup": str(GROUP)})
        )
    check_readers(volume)


async def test_without_a_group_files_stay_root_owned(
    serve_config: Callable[..., ServeConfig], volume: Path
) -> None:
    async with running(serve_config(write_mode="provider", kubelet_pods_dir=PODS(volume))) as stubs:
        await stubs["csiprovider"].Mount(mount_request(OBJECTS, target_path=str(volume)))
    assert (volume / "db-password").resolve().stat().st_gid == 0
    assert read_as(READER, [GROUP], volume / "db-password").returncode != 0

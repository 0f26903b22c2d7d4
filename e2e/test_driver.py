"""The daemon as the real driver and sync controller meet it: every request here is built,
sent, checked and written by testkit/go/driver (the driver's and the sync controller's
client behaviour, in Go with grpc-go), against real daemon processes."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from csiprovider.local.mount import MountOptions, build_request
from csiprovider.local.spc import parse_spc
from csiprovider.resolver import NO_OBJECTS_ID
from e2e.conftest import Daemon
from testkit import driver
from testkit.requests import pod_volume

FILES = "- {objectName: user, backend: file, path: db/username}\n"
FILE_VALUE = b"e2e-user-Zq81"


@pytest.fixture
def harness(driver_binary: Path, tmp_path: Path) -> Iterator[Callable[..., driver.Driver]]:
    started: list[driver.Driver] = []

    def start(daemon: Daemon, **flags: object) -> driver.Driver:
        found = driver.Driver(driver_binary, daemon.providers_dir, **flags)  # type: ignore[arg-type]
        started.append(found)
        return found

    yield start
    for one in started:
        one.close()


def daemon_in(mode: str, start_daemon: Callable[..., Daemon], pods: Path, *extra: str) -> Daemon:
    return start_daemon("--write-mode", mode, "--kubelet-pods-dir", str(pods), *extra)


def visible(target: Path) -> dict[str, bytes]:
    return {n: (target / n).read_bytes() for n in os.listdir(target) if not n.startswith("..")}


def mounts_logged(daemon: Daemon) -> int:
    """Mount answers the daemon logged (one per attempt the driver made)."""
    return sum(
        json.loads(line).get("msg") in ("mount", "mount failed")
        for line in daemon.log().splitlines()
        if line.startswith("{")
    )


@pytest.mark.parametrize("mode", ["driver", "provider"])
def test_a_pod_without_node_publish_secret_ref_mounts(
    start_daemon: Callable[..., Daemon],
    harness: Callable[..., driver.Driver],
    tmp_path: Path,
    mode: str,
) -> None:
    """The driver sends `secrets: null` for a volume without nodePublishSecretRef (most
    pods): it must mount, whoever writes the files."""
    daemon = daemon_in(mode, start_daemon, tmp_path / "pods")
    target = pod_volume(tmp_path / "pods", uid=driver.POD_UID)
    result = harness(daemon).mount("csiprovider", {"objects": FILES}, target)
    assert result.sent["secrets"] == "null"
    assert result.ok, result.event
    assert result.wrote is (mode == "driver")  # else the provider wrote, answering no files
    assert visible(target) == {"user": FILE_VALUE}
    assert list(result.object_versions) == ["user"]


def test_node_publish_secret_ref_data_and_tokens_in_secrets_are_both_read(
    start_daemon: Callable[..., Daemon], harness: Callable[..., driver.Driver], tmp_path: Path
) -> None:
    """With Kubernetes 1.35's opt-in the driver passes the tokens in the secrets too: the
    request still parses, and the tokens are the pod's, not Secret data."""
    daemon = daemon_in("driver", start_daemon, tmp_path / "pods")
    target = pod_volume(tmp_path / "pods", uid=driver.POD_UID)
    tokens = driver.tokens({"vault": "header.payload.signature"})
    found = harness(daemon).mount(
        "csiprovider",
        {"objects": FILES},
        target,
        secrets={"username": "from-the-secret"},
        tokens=tokens,
        tokens_in_secrets=True,
    )
    assert found.ok, found.event
    sent = json.loads(found.sent["secrets"])
    assert set(sent) == {"username", "csi.storage.k8s.io/serviceAccount.tokens"}
    assert "csi.storage.k8s.io/serviceAccount.tokens" in found.attributes


@pytest.mark.parametrize("mode", ["driver", "provider"])
def test_every_object_optional_and_absent_mounts_an_empty_volume(
    start_daemon: Callable[..., Daemon],
    harness: Callable[..., driver.Driver],
    tmp_path: Path,
    mode: str,
) -> None:
    """The driver refuses an answer without object versions; the daemon gives the
    documented placeholder, and the pod starts with an empty volume."""
    daemon = daemon_in(mode, start_daemon, tmp_path / "pods")
    target = pod_volume(tmp_path / "pods", uid=driver.POD_UID)
    objects = "- {objectName: later, backend: file, path: not-yet, optional: true}\n"
    result = harness(daemon).mount("csiprovider", {"objects": objects}, target)
    assert result.ok, result.event
    assert list(result.object_versions) == [NO_OBJECTS_ID]
    assert visible(target) == {}


def test_a_refusal_reaches_the_pod_event_in_the_drivers_words(
    start_daemon: Callable[..., Daemon], harness: Callable[..., driver.Driver], tmp_path: Path
) -> None:
    daemon = daemon_in("driver", start_daemon, tmp_path / "pods")
    target = pod_volume(tmp_path / "pods", uid=driver.POD_UID)
    objects = "- {objectName: x, backend: file, path: missing}\n"
    result = harness(daemon).mount("csiprovider", {"objects": objects}, target)
    assert not result.ok and result.code == "NotFound"
    assert result.event == (
        'MountVolume.SetUp failed for volume "secrets-store-inline" : rpc error: code = '
        "NotFound desc = failed to mount secrets store objects for pod default/app-0, err: "
        "rpc error: code = NotFound desc = objects[0] (objectName 'x'): file 'missing' not "
        "found in the file backend for namespace 'default'; create it under the daemon's "
        "--file-root as default/missing"
    )
    assert mounts_logged(daemon) == 1  # NOT_FOUND is not retried


def test_unavailable_is_retried_twice_by_the_driver(
    start_daemon: Callable[..., Daemon], harness: Callable[..., driver.Driver], tmp_path: Path
) -> None:
    """The driver's service config retries UNAVAILABLE (3 attempts in all, 1 s apart):
    each costs a Mount, which is why the daemon keeps UNAVAILABLE for what a retry a
    second later can fix, such as a store that cannot be reached."""
    daemon = daemon_in("driver", start_daemon, tmp_path / "pods")
    target = pod_volume(tmp_path / "pods", uid=driver.POD_UID)
    params = {
        "objects": "- {objectName: v, backend: vault, secretPath: secret/data/x, secretKey: k}\n",
        "roleName": "app",
        "vaultAddress": "http://127.0.0.1:9",  # nothing listens: connection refused
    }
    tokens = driver.tokens({"vault": "header.payload.signature"})
    result = harness(daemon).mount("csiprovider", params, target, tokens=tokens)
    assert result.code == "Unavailable", result.event
    assert mounts_logged(daemon) == 3


@pytest.mark.parametrize(
    ("provider_limit", "driver_limit", "ok"),
    [(None, None, False), (8 << 20, None, False), (8 << 20, 8 << 20, True)],
)
def test_answers_above_4_mib_need_both_limits_raised(
    start_daemon: Callable[..., Daemon],
    harness: Callable[..., driver.Driver],
    tmp_path: Path,
    file_root: Path,
    provider_limit: int | None,
    driver_limit: int | None,
    ok: bool,
) -> None:
    for name in ("big1", "big2", "big3"):
        (file_root / "default" / name).write_bytes(os.urandom(2 << 20))
    extra = () if provider_limit is None else ("--max-response-bytes", str(provider_limit))
    daemon = daemon_in("driver", start_daemon, tmp_path / "pods", *extra)
    target = pod_volume(tmp_path / "pods", uid=driver.POD_UID)
    objects = "".join(f"- {{objectName: {n}, backend: file}}\n" for n in ("big1", "big2", "big3"))
    found = harness(daemon, max_recv_bytes=driver_limit).mount(
        "csiprovider", {"objects": objects}, target
    )
    assert found.ok is ok, found.event
    if ok:
        assert found.wrote and len(visible(target)) == 3
        assert any("proto above 1MiB" in line for line in found.logs)
    elif provider_limit is None:  # ours, naming both flags
        assert found.code == "ResourceExhausted"
        assert "--max-call-recv-msg-size and this provider's --max-response-bytes" in found.event
    else:  # the driver's own limit: its log line says which flag to raise
        assert found.code == "ResourceExhausted"
        assert any("Set --max-call-recv-msg-size" in line for line in found.logs)


def test_the_sync_controller_gets_the_files_from_a_provider_writes_daemon(
    start_daemon: Callable[..., Daemon], harness: Callable[..., driver.Driver], tmp_path: Path
) -> None:
    """The sync controller calls with its own pod, a SecretSync's namespace and service
    account and target /mnt/secrets-store, and reads the files from the answer: a
    provider-writes daemon answers it as in driver mode, writing nothing of its own."""
    daemon = daemon_in("provider", start_daemon, tmp_path / "pods")
    result = harness(daemon).sync(
        "csiprovider",
        {"objects": FILES},
        namespace="default",
        service_account="app",
        tokens=driver.tokens({"vault": "header.payload.signature"}),
    )
    assert result.ok, result.error
    assert result.sent["target_path"] == "/mnt/secrets-store"
    assert result.sent["secrets"] == "{}"
    assert result.files == {"user": FILE_VALUE}
    assert not Path("/mnt/secrets-store").exists()


def test_csiprovider_mount_sends_what_the_driver_sends(
    start_daemon: Callable[..., Daemon], harness: Callable[..., driver.Driver], tmp_path: Path
) -> None:
    """`csiprovider mount` builds the request the driver builds, byte for byte: the
    attributes (Go's map encoding, HTML escapes), `null` secrets, the permission."""
    daemon = daemon_in("driver", start_daemon, tmp_path / "pods")
    parameters = {"objects": FILES + "# a <comment> & more\n", "usePodIdentity": "false"}
    spc = parse_spc(
        {
            "apiVersion": "secrets-store.csi.x-k8s.io/v1",
            "kind": "SecretProviderClass",
            "metadata": {"name": "app-secrets", "namespace": "default"},
            "spec": {"provider": "csiprovider", "parameters": parameters},
        }
    )
    jwt = "eyJhbGciOiJub25lIn0.eyJleHAiOjE5MDAwMDAwMDB9.c2ln"  # exp 1900000000
    for secrets in (None, {"password": "p<&>"}):
        ours = build_request(
            MountOptions(
                spc=spc,
                target=tmp_path,
                socket=daemon.socket(),
                pod_name="app-0",
                pod_namespace="default",
                pod_uid=driver.POD_UID,
                service_account="app",
                tokens={"vault": jwt},
                secrets=secrets,
            )
        )
        theirs = harness(daemon).mount(
            "csiprovider",
            parameters,
            tmp_path,
            context=driver.volume_context("app-secrets", service_account="app"),
            secrets=secrets,
            tokens=driver.tokens({"vault": jwt}, expiry="2030-03-17T17:46:40Z"),
        )
        assert theirs.sent["attributes"] == ours.attributes
        assert theirs.sent["secrets"] == ours.secrets
        assert theirs.sent["permission"] == ours.permission


@pytest.mark.parametrize("mode", ["driver", "provider"])
def test_republish_rotates_and_keeps_the_files_when_it_fails(
    start_daemon: Callable[..., Daemon],
    harness: Callable[..., driver.Driver],
    tmp_path: Path,
    file_root: Path,
    mode: str,
) -> None:
    """Driver v1.6 rotates through kubelet's periodic republish: with rotation on it calls
    Mount again once the volume is older than --rotation-poll-interval, writes the new
    files, and keeps the pod's files when that Mount fails (the error is only counted)."""
    daemon = daemon_in(mode, start_daemon, tmp_path / "pods")
    target = pod_volume(tmp_path / "pods", uid=driver.POD_UID)
    plays = harness(daemon, rotation_poll="0s")
    assert plays.mount("csiprovider", {"objects": FILES}, target).ok
    (file_root / "default" / "db" / "username").write_text("rotated-user")
    again = plays.mount("csiprovider", {"objects": FILES}, target, republish=True)
    assert again.ok and not again.skipped, again.event
    assert visible(target) == {"user": b"rotated-user"}
    (file_root / "default" / "db" / "username").unlink()
    failed = plays.mount("csiprovider", {"objects": FILES}, target, republish=True)
    assert not failed.ok and failed.masked and failed.code == "NotFound"
    assert visible(target) == {"user": b"rotated-user"}  # kept


def test_a_republish_within_the_poll_interval_does_not_call_the_provider(
    start_daemon: Callable[..., Daemon], harness: Callable[..., driver.Driver], tmp_path: Path
) -> None:
    daemon = daemon_in("driver", start_daemon, tmp_path / "pods")
    target = pod_volume(tmp_path / "pods", uid=driver.POD_UID)
    plays = harness(daemon, rotation_poll="1h")
    assert plays.mount("csiprovider", {"objects": FILES}, target).ok
    assert plays.mount("csiprovider", {"objects": FILES}, target, republish=True).skipped
    assert mounts_logged(daemon) == 1


def test_after_a_switch_to_driver_writes_the_old_daemon_stops_rotating_the_volume(
    start_daemon: Callable[..., Daemon],
    harness: Callable[..., driver.Driver],
    tmp_path: Path,
    file_root: Path,
) -> None:
    """A provider-writes daemon rotates a volume; then a driver-writes daemon serves it
    and the driver writes it (its writer takes no lock). The first daemon's next rotation
    sees a version it did not write, and stops instead of racing the driver."""
    pods = tmp_path / "pods"
    old = start_daemon(
        "--write-mode",
        "provider",
        "--kubelet-pods-dir",
        str(pods),
        providers_dir=tmp_path / "old",
    )
    # The new daemon reads another file root, so what the driver writes differs (its
    # writer writes nothing when the bytes are the same).
    (tmp_path / "new-root" / "default" / "db").mkdir(parents=True)
    (tmp_path / "new-root" / "default" / "db" / "username").write_text("from-the-new-daemon")
    new = start_daemon(
        "--write-mode",
        "driver",
        "--file-root",
        str(tmp_path / "new-root"),
        providers_dir=tmp_path / "new",
    )
    target = pod_volume(pods, uid=driver.POD_UID)
    objects = {"objects": FILES, "rotationPollInterval": "1h"}  # only file changes rotate
    assert harness(old).mount("csiprovider", objects, target).ok
    by_driver = harness(new).mount("csiprovider", objects, target)
    assert by_driver.ok and visible(target) == {"user": b"from-the-new-daemon"}
    (file_root / "default" / "db" / "username").write_text("changed-after-the-switch")
    guard = time.monotonic() + 60  # the file watcher's report, then the rotation
    while "no longer rotated" not in old.log():
        assert time.monotonic() < guard, old.log()
        time.sleep(0.05)
    assert visible(target) == {"user": b"from-the-new-daemon"}  # the driver's, untouched
    assert "volume rotated" not in old.log()


@pytest.mark.parametrize("mode", ["driver", "provider"])
def test_which_republishes_reach_the_provider(
    start_daemon: Callable[..., Daemon],
    harness: Callable[..., driver.Driver],
    tmp_path: Path,
    mode: str,
) -> None:
    """With rotation on, the driver calls Mount on a republish once the target is older
    than its --rotation-poll-interval. Its writer touches the target only when bytes
    change, so in driver mode an unchanged volume reaches the provider at every republish;
    a provider-writes daemon marks the volume current each time, so the next republishes
    within the interval stay with the driver."""
    daemon = daemon_in(mode, start_daemon, tmp_path / "pods")
    target = pod_volume(tmp_path / "pods", uid=driver.POD_UID)
    plays = harness(daemon, rotation_poll="10m")
    assert plays.mount("csiprovider", {"objects": FILES}, target).ok
    an_hour_ago = time.time() - 3600
    os.utime(target, (an_hour_ago, an_hour_ago))  # the volume is old: due for rotation
    due = plays.mount("csiprovider", {"objects": FILES}, target, republish=True)
    assert due.ok and not due.skipped and mounts_logged(daemon) == 2
    later = plays.mount("csiprovider", {"objects": FILES}, target, republish=True)
    assert later.skipped is (mode == "provider")
    assert mounts_logged(daemon) == (2 if mode == "provider" else 3)

"""Provider-writes rotation: file changes within seconds, polling for backends, set-atomic
rewrites, expired tokens wait for the next Mount, unmounted volumes are dropped.

The tests wait for what the daemon reports (WatchedTracker), never for a time after which
it has probably happened: on a busy machine everything happens later, but in order."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

from csiprovider.server import ServeConfig
from testkit.daemon import running
from testkit.requests import mount_request
from testkit.servers import OpenBao, Signer
from testkit.tracker import GUARD, WatchedTracker, watching
from tests.stores.vault.test_backend import request as vault_request


async def eventually(check: Callable[[], bool], what: str, timeout: float = GUARD) -> None:
    """Poll `check` until it holds; `timeout` is a failure guard only."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def tracked() -> float:
    return REGISTRY.get_sample_value("csiprovider_tracked_volumes") or 0


async def test_file_change_rewrites_at_once_and_unmount_untracks(
    serve_config: Callable[..., ServeConfig], file_root: Path, target: Path
) -> None:
    """The poll is an hour away: only the file watcher can bring the change (the wait is
    for the tracker's reports; its guard is a minute, far below the hour)."""
    config = serve_config(write_mode="provider", rotation_poll_interval=3600.0)
    tracker = WatchedTracker(config.rotation_poll_interval)
    objects = [
        {"objectName": "user", "backend": "file", "path": "db/username"},
        {"objectName": "pass", "backend": "file", "path": "db/password"},
    ]
    async with running(config, tracker) as stubs:
        await stubs["csiprovider"].Mount(mount_request(objects, target_path=str(target)))
        assert (target / "user").read_text() == "app_user"
        assert tracked() == 1
        await watching(tracker, file_root)
        (file_root / "default" / "db" / "password").write_text("rotated-pw")
        await tracker.wait_for(
            lambda: (target / "pass").read_text() == "rotated-pw", "rotation of the new file"
        )
        shutil.rmtree(target)  # the pod is gone, kubelet unmounted the volume
        await tracker.wait_for(lambda: tracked() == 0, "untracking")


async def test_poll_rotates_vault_set_atomically_and_waits_for_expired_tokens(
    serve_config: Callable[..., ServeConfig],
    openbao: OpenBao,
    signer: Signer,
    target: Path,
    kube_api: Any,
) -> None:
    openbao.api("POST", "secret/data/pair", {"data": {"u": "user-1", "p": "pass-1"}})
    objects = (
        "- {objectName: u, secretPath: secret/data/pair, secretKey: u}\n"
        "- {objectName: p, secretPath: secret/data/pair, secretKey: p}"
    )
    config = serve_config(names=["vault"], write_mode="provider", rotation_poll_interval=3600.0)
    tracker = WatchedTracker(config.rotation_poll_interval)
    async with running(config, tracker) as stubs:
        req = vault_request(openbao, signer, objects, rotationPollInterval="1s")
        req.target_path = str(target)
        await stubs["vault"].Mount(req)
        assert (target / "u").read_text() == "user-1"
        openbao.api("POST", "secret/data/pair", {"data": {"u": "user-2", "p": "pass-2"}})

        def both_new() -> bool:
            data = target / os.readlink(target / "..data")
            u, p = (data / "u").read_text(), (data / "p").read_text()
            assert (u, p) in (("user-1", "pass-1"), ("user-2", "pass-2")), "mixed set"
            return u == "user-2"

        await eventually(both_new, "poll rotation")
        # Tokens already expired: rotation waits for kubelet's next Mount.
        attrs = json.loads(req.attributes)
        tokens = json.loads(attrs["csi.storage.k8s.io/serviceAccount.tokens"])
        tokens["vault"]["expirationTimestamp"] = "2020-01-01T00:00:00Z"
        attrs["csi.storage.k8s.io/serviceAccount.tokens"] = json.dumps(tokens)
        req.attributes = json.dumps(attrs)
        await stubs["vault"].Mount(req)
        openbao.api("POST", "secret/data/pair", {"data": {"u": "user-3", "p": "pass-3"}})
        updated = time.monotonic()
        # A poll pass after the update takes the volume up (it is due every second) and
        # leaves it: neither a write nor an attempt to read.
        await tracker.wait_for(
            lambda: any(p.started > updated and str(target) in p.visited for p in tracker.polls),
            "poll pass over the volume after the update",
        )
        assert (target / "u").read_text() == "user-2"
        assert not [r for r in tracker.rotations if r.started > updated]

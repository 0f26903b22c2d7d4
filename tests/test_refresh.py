"""`csiprovider refresh`: provider-written volumes re-resolved now, over the daemon's
0600 admin socket, filtered by namespace, SPC or pod."""

from __future__ import annotations

import asyncio
import json
import stat
import sys
from collections.abc import Callable
from pathlib import Path

from csiprovider.server import ServeConfig
from testkit.daemon import running
from testkit.requests import mount_request, pod_volume
from testkit.servers import OpenBao, Signer

POD_UID = "6f1c3f0e-1111-2222-3333-444455556666"


def request(bao: OpenBao, signer: Signer, target: Path, namespace: str, path: str) -> object:
    token = signer.token(namespace, "app", ["vault"], pod="app-0", pod_uid=POD_UID)
    objects = [{"objectName": "v", "secretPath": path, "secretKey": "v"}]
    extra = {
        "roleName": "refresh",
        "vaultAddress": bao.addr,
        "csi.storage.k8s.io/serviceAccount.tokens": json.dumps(
            {"vault": {"token": token, "expirationTimestamp": "2030-01-01T00:00:00Z"}}
        ),
    }
    return mount_request(objects, namespace=namespace, extra=extra, target_path=str(target))


async def refresh(admin: Path, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "csiprovider",
        "refresh",
        "--admin-socket",
        str(admin),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_refresh_rewrites_matching_volumes_now(
    serve_config: Callable[..., ServeConfig], openbao: OpenBao, signer: Signer, tmp_path: Path
) -> None:
    openbao.api(
        "POST",
        "auth/kubernetes/role/refresh",
        {
            "bound_service_account_names": ["app"],
            "bound_service_account_namespaces": ["default", "shop"],
            "audience": "vault",
            "token_policies": ["app"],
            "token_ttl": "1h",
        },
    )
    openbao.api("POST", "secret/data/refresh-a", {"data": {"v": "a-1"}})
    openbao.api("POST", "secret/data/refresh-b", {"data": {"v": "b-1"}})
    admin = tmp_path / "admin.sock"
    config = serve_config(
        names=["vault"],
        write_mode="provider",
        admin_socket=admin,
        rotation_poll_interval=3600.0,
        cache_ttl=600.0,
    )
    mine = pod_volume(tmp_path / "pods", name="mine")
    theirs = pod_volume(tmp_path / "pods", name="theirs")
    async with running(config) as stubs:
        await stubs["vault"].Mount(
            request(openbao, signer, mine, "default", "secret/data/refresh-a")
        )
        await stubs["vault"].Mount(
            request(openbao, signer, theirs, "shop", "secret/data/refresh-b")
        )
        assert stat.S_IMODE(admin.stat().st_mode) == 0o600
        openbao.api("POST", "secret/data/refresh-a", {"data": {"v": "a-2"}})
        openbao.api("POST", "secret/data/refresh-b", {"data": {"v": "b-2"}})
        code, out = await refresh(admin, "--namespace", "default")
        assert code == 0, out
        assert out.startswith("changed") and f"default/app-0 spc=app-secrets {mine}" in out
        assert str(theirs) not in out
        assert (mine / "v").read_text() == "a-2"  # now, not at the next rotation
        assert (theirs / "v").read_text() == "b-1"  # not asked for
        code, out = await refresh(admin, "--pod", "app-0")
        assert code == 0 and out.count("unchanged") == 1 and out.count("changed") == 2
        code, out = await refresh(admin, "--spc", "nothing-like-it")
        assert code == 0 and out.strip() == "no tracked volume matches"


async def test_driver_mode_says_the_driver_rotates(
    serve_config: Callable[..., ServeConfig], tmp_path: Path
) -> None:
    admin = tmp_path / "admin.sock"
    async with running(serve_config(admin_socket=admin)):
        code, out = await refresh(admin)
    assert code == 0 and "driver-writes mode" in out
    assert not admin.exists()  # removed on shutdown


async def test_no_daemon_says_where_to_run_it(tmp_path: Path) -> None:
    code, out = await refresh(tmp_path / "none.sock")
    assert code == 2 and "kubectl exec" in out


async def test_a_connection_without_a_request_refreshes_nothing(tmp_path: Path) -> None:
    """Another daemon starting probes the admin socket (connect, close): that is not a
    request to refresh every volume."""
    from csiprovider.admin import serve_admin
    from csiprovider.request import parse_mount_request
    from csiprovider.rotation import Tracker
    from testkit.daemon import listening

    rewrites: list[str] = []

    async def rewrite(request: object, max_age: float) -> bool:
        rewrites.append("called")
        return False

    tracker = Tracker(3600.0)
    target = pod_volume(tmp_path / "pods")
    kept = mount_request([{"objectName": "a", "backend": "file"}], target_path=str(target))
    tracker.track(parse_mount_request(kept), kept, rewrite, uses_files=False)
    admin = tmp_path / "admin.sock"
    server = await serve_admin(admin, tracker, "provider")
    try:
        assert await asyncio.get_running_loop().run_in_executor(None, listening, admin)
        code, out = await refresh(admin, "--spc", "nothing-like-it")  # answered after it
        assert code == 0 and out.strip() == "no tracked volume matches"
        assert rewrites == []
        code, out = await refresh(admin)  # an explicit request still refreshes all
        assert code == 0 and rewrites == ["called"]
    finally:
        server.close()

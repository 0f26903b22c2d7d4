"""Outages and bad data: the last good content keeps pods running, optional objects do
not fail a Mount, a malformed reply is an error and never a crash."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY

from csiprovider.server import ServeConfig
from tests.conftest import running
from tests.helpers import mount_request
from tests.servers import OpenBao, Signer, start_vault_proxy
from tests.test_vault_backend import files, request


@pytest.fixture
def proxy(openbao: OpenBao) -> Iterator[Any]:
    openbao.api("POST", "secret/data/resilient", {"data": {"k": "good"}})
    p = start_vault_proxy(openbao.addr)
    yield p
    p.server.shutdown()


def stale_count() -> float:
    return REGISTRY.get_sample_value("csiprovider_stale_served_total", {"backend": "vault"}) or 0


OBJ = "- {objectName: k, secretPath: secret/data/resilient, secretKey: k}"


async def test_vault_outage_serves_last_good_content(
    serve_config: Callable[..., ServeConfig], openbao: OpenBao, proxy: Any, signer: Signer,
    kube_api: Any,
) -> None:
    async with running(serve_config(names=["vault"], mount_timeout=1.5)) as stubs:
        first = await stubs["vault"].Mount(request(openbao, signer, OBJ, vaultAddress=proxy.url))
        proxy.faults["/v1/secret/data/resilient"] = [503] * 1000  # Vault goes down
        before = stale_count()
        again = await stubs["vault"].Mount(request(openbao, signer, OBJ, vaultAddress=proxy.url))
        assert files(again) == files(first) == {"k": b"good"}
        assert list(again.object_version) == list(first.object_version)
        assert stale_count() - before == 1
        proxy.faults.clear()  # Vault is back: fresh content flows again
        openbao.api("POST", "secret/data/resilient", {"data": {"k": "newer"}})
        fresh = await stubs["vault"].Mount(request(openbao, signer, OBJ, vaultAddress=proxy.url))
        assert files(fresh) == {"k": b"newer"}


async def test_first_mount_during_outage_is_unavailable(
    serve_config: Callable[..., ServeConfig], openbao: OpenBao, proxy: Any, signer: Signer,
    kube_api: Any,
) -> None:
    proxy.faults["/v1/secret/data/resilient"] = [503] * 1000
    async with running(serve_config(names=["vault"], mount_timeout=1.0)) as stubs:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stubs["vault"].Mount(request(openbao, signer, OBJ, vaultAddress=proxy.url))
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "Code: 503" in (info.value.details() or "")


async def test_malformed_reply_is_an_error_not_a_crash(
    serve_config: Callable[..., ServeConfig], openbao: OpenBao, proxy: Any, signer: Signer,
    kube_api: Any,
) -> None:
    proxy.canned["/v1/secret/data/resilient"] = (200, b"<html>not json</html>")
    async with running(serve_config(names=["vault"])) as stubs:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stubs["vault"].Mount(request(openbao, signer, OBJ, vaultAddress=proxy.url))
        assert "is not JSON" in (info.value.details() or "")
        del proxy.canned["/v1/secret/data/resilient"]
        reply = await stubs["vault"].Mount(request(openbao, signer, OBJ, vaultAddress=proxy.url))
    assert files(reply) == {"k": b"good"}


async def test_optional_objects(stub: Any, file_root: Path) -> None:
    objects: list[dict[str, Any]] = [
        {"objectName": "present", "backend": "file", "path": "db/username"},
        {"objectName": "absent", "backend": "file", "path": "nope", "optional": True},
    ]
    reply = await stub.Mount(mount_request(objects))
    assert [f.path for f in reply.files] == ["present"]
    assert [v.id for v in reply.object_version] == ["present"]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Mount(mount_request([objects[1]]))
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "the driver needs at least one" in (info.value.details() or "")

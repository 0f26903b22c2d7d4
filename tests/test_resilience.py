"""Outages and bad data: the last good content keeps pods running, optional objects do
not fail a Mount, a malformed reply is an error and never a crash."""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY

from csiprovider import limits
from csiprovider.resolver import NO_OBJECTS_ID
from csiprovider.server import ServeConfig
from testkit.daemon import running
from testkit.requests import mount_request
from testkit.servers import OpenBao, Signer, start_vault_proxy
from tests.stores.vault.test_backend import files, request


@pytest.fixture
def proxy(openbao: OpenBao) -> Iterator[Any]:
    openbao.api("POST", "secret/data/resilient", {"data": {"k": "good"}})
    p = start_vault_proxy(openbao.addr)
    yield p
    p.server.shutdown()


def stale_count() -> float:
    return REGISTRY.get_sample_value("csiprovider_stale_served_total", {"backend": "vault"}) or 0


OBJ = "- {objectName: k, secretPath: secret/data/resilient, secretKey: k}"
GUARD = 60.0  # seconds: only against a hang, never the thing asserted


async def test_vault_outage_serves_last_good_content(
    serve_config: Callable[..., ServeConfig],
    openbao: OpenBao,
    proxy: Any,
    signer: Signer,
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
    serve_config: Callable[..., ServeConfig],
    openbao: OpenBao,
    proxy: Any,
    signer: Signer,
    kube_api: Any,
) -> None:
    proxy.faults["/v1/secret/data/resilient"] = [503] * 1000
    async with running(serve_config(names=["vault"], mount_timeout=1.0)) as stubs:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stubs["vault"].Mount(request(openbao, signer, OBJ, vaultAddress=proxy.url))
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "Code: 503" in (info.value.details() or "")


async def test_malformed_reply_is_an_error_not_a_crash(
    serve_config: Callable[..., ServeConfig],
    openbao: OpenBao,
    proxy: Any,
    signer: Signer,
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
    # All optional and none there: an empty volume, with the placeholder version the
    # driver needs (it refuses a response without any: "missing object versions").
    reply = await stub.Mount(mount_request([objects[1]]))
    assert list(reply.files) == []
    assert [v.id for v in reply.object_version] == [NO_OBJECTS_ID]
    again = await stub.Mount(mount_request([objects[1]]))
    assert again.object_version == reply.object_version  # stable: no status churn


async def test_outage_republish_serves_last_good_within_the_stale_wait(
    serve_config: Callable[..., ServeConfig],
    openbao: OpenBao,
    proxy: Any,
    signer: Signer,
) -> None:
    """The backend keeps failing; a republish with last good content answers after
    STALE_WAIT_SECONDS, not after the whole Mount deadline: that is 2 * GUARD here, so a
    republish that waited for it fails the test at GUARD, however slow the machine."""
    deadline = 2 * GUARD
    async with running(serve_config(names=["vault"], mount_timeout=deadline)) as stubs:
        first = await stubs["vault"].Mount(request(openbao, signer, OBJ, vaultAddress=proxy.url))
        proxy.faults["/v1/secret/data/resilient"] = [503] * 10_000
        started = time.monotonic()
        again = await asyncio.wait_for(
            stubs["vault"].Mount(
                request(openbao, signer, OBJ, vaultAddress=proxy.url), timeout=deadline + 10
            ),
            GUARD,
        )
        waited = time.monotonic() - started
        # Vault comes back with new content: the read still retrying in the background
        # (for the republish's long deadline) ends, and a later republish has it.
        openbao.api("POST", "secret/data/resilient", {"data": {"k": "newer"}})
        proxy.faults.clear()
        loop = asyncio.get_running_loop()
        guard = loop.time() + GUARD
        while files(
            await stubs["vault"].Mount(request(openbao, signer, OBJ, vaultAddress=proxy.url))
        ) != {"k": b"newer"}:
            assert loop.time() < guard, "the backend's content did not come back"
    assert files(again) == files(first)
    assert waited > limits.STALE_WAIT_SECONDS - 0.5  # it gave the backend that long first


async def test_oversized_and_non_json_replies_name_the_object(
    serve_config: Callable[..., ServeConfig],
    openbao: OpenBao,
    proxy: Any,
    signer: Signer,
) -> None:
    """A 50 MB reply is refused while streaming (the daemon never holds it); a non-JSON
    200 (a proxy's page) is UNAVAILABLE; both name the object, neither is INTERNAL.
    (No good Mount first: with last good content, UNAVAILABLE would serve that.)"""
    async with running(serve_config(names=["vault"])) as stubs:
        proxy.canned["/v1/secret/data/resilient"] = (200, b'{"data": "' + b"x" * 50_000_000)
        tracemalloc.start()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stubs["vault"].Mount(request(openbao, signer, OBJ, vaultAddress=proxy.url))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert info.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert "objects[0] (objectName 'k')" in (info.value.details() or "")
        assert f"larger than {limits.MAX_REPLY_BYTES} bytes" in (info.value.details() or "")
        assert peak < 4 * limits.MAX_REPLY_BYTES  # not the 50 MB
        proxy.canned["/v1/secret/data/resilient"] = (200, b"<html>bad gateway</html>")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stubs["vault"].Mount(request(openbao, signer, OBJ, vaultAddress=proxy.url))
        assert info.value.code() is grpc.StatusCode.UNAVAILABLE
        assert "is not JSON" in (info.value.details() or "")
        assert "objectName 'k'" in (info.value.details() or "")

"""The Kubernetes API calls, against the API stand-in: TokenRequest and the HMAC key
Secret (get-or-create, race-safe, read once per daemon)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from csiprovider.errors import PermissionDenied
from csiprovider.kube import KubeClient
from csiprovider.server import ServeConfig, ServeError
from tests.conftest import running
from tests.helpers import mount_request
from tests.servers import KubeAPI


@pytest.fixture
def client(kube_api: KubeAPI) -> KubeClient:
    found = KubeClient.from_environment(kube_api.url)
    assert found is not None
    return found


def test_token_request_is_pod_bound_and_short(client: KubeClient, kube_api: KubeAPI) -> None:
    token = client.token_request("shop", "web", "web-0", "uid-1", "custom")
    claims = kube_api.signer.verify(token)
    assert claims is not None and claims["aud"] == ["custom"]
    assert claims["kubernetes.io"]["pod"] == {"name": "web-0", "uid": "uid-1"}
    assert 800 < claims["exp"] - claims["iat"] <= 900


def test_hmac_key_created_once_then_reused(client: KubeClient, kube_api: KubeAPI) -> None:
    first = client.hmac_key("csi", "key-a")
    assert len(first) == 32
    assert kube_api.secrets[("csi", "key-a")]["immutable"] is True
    creates = kube_api.count("POST", "/namespaces/csi/secrets")
    assert client.hmac_key("csi", "key-a") == first
    assert kube_api.count("POST", "/namespaces/csi/secrets") == creates


def test_hmac_key_lost_create_race_reads_the_winner(client: KubeClient,
                                                    kube_api: KubeAPI) -> None:
    winner = base64.b64encode(b"w" * 32).decode()
    kube_api.hide_once.add(("csi", "key-race"))  # our GET misses it, our POST conflicts
    kube_api.secrets[("csi", "key-race")] = {"data": {"key": winner}}
    assert client.hmac_key("csi", "key-race") == b"w" * 32


def test_hmac_secret_without_key_is_refused(client: KubeClient, kube_api: KubeAPI) -> None:
    kube_api.secrets[("csi", "broken")] = {"data": {}}
    with pytest.raises(PermissionDenied, match="delete it and the daemon will create a new one"):
        client.hmac_key("csi", "broken")


async def test_daemon_versions_stable_across_restarts_with_secret_key(
    serve_config: Callable[..., ServeConfig], kube_api: KubeAPI, target: Path
) -> None:
    config = serve_config(hmac_key_file=None, hmac_secret_name="csiprovider-hmac",
                          hmac_secret_namespace="csi", kube_api_url=kube_api.url)
    objects = [{"objectName": "p", "backend": "file", "path": "db/password"}]
    versions: list[Any] = []
    for _ in range(2):
        async with running(config) as stubs:
            for _ in range(3):
                reply = await stubs["csiprovider"].Mount(mount_request(objects))
            versions.append(list(reply.object_version))
    assert versions[0] == versions[1]
    assert kube_api.count("GET", "/namespaces/csi/secrets/csiprovider-hmac") == 2  # per start


async def test_hmac_secret_needs_kubernetes_api(
    serve_config: Callable[..., ServeConfig]
) -> None:
    with pytest.raises(ServeError, match="needs the Kubernetes API"):
        async with running(serve_config(hmac_key_file=None, hmac_secret_name="x")):
            pass



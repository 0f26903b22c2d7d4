"""The Kubernetes API calls, against the API stand-in: TokenRequest and the HMAC key
Secret (get-or-create, race-safe, read once per daemon); the client-side rate limit
(--kube-qps/--kube-burst) and the retries of 429, 5xx and dropped connections, through a
fault-injecting proxy in front of the stand-in."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from csiprovider import kube
from csiprovider.cli import parser
from csiprovider.errors import PermissionDenied, Unavailable
from csiprovider.kube import KubeClient, RateLimiter
from csiprovider.server import ServeConfig, ServeError
from testkit.daemon import running
from testkit.requests import mount_request
from testkit.servers import KubeAPI, KubeFaults, free_port, start_kube_faults


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


def test_hmac_key_lost_create_race_reads_the_winner(client: KubeClient, kube_api: KubeAPI) -> None:
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
    config = serve_config(
        hmac_key_file=None,
        hmac_secret_name="csiprovider-hmac",
        hmac_secret_namespace="csi",
        kube_api_url=kube_api.url,
    )
    objects = [{"objectName": "p", "backend": "file", "path": "db/password"}]
    versions: list[Any] = []
    for _ in range(2):
        async with running(config) as stubs:
            for _ in range(3):
                reply = await stubs["csiprovider"].Mount(mount_request(objects))
            versions.append(list(reply.object_version))
    assert versions[0] == versions[1]
    assert kube_api.count("GET", "/namespaces/csi/secrets/csiprovider-hmac") == 2  # per start


async def test_hmac_secret_needs_kubernetes_api(serve_config: Callable[..., ServeConfig]) -> None:
    with pytest.raises(ServeError, match="needs the Kubernetes API"):
        async with running(serve_config(hmac_key_file=None, hmac_secret_name="x")):
            pass


# ---------------------------------------------------------------- retries


@pytest.fixture
def faults(kube_api: KubeAPI) -> Iterator[KubeFaults]:
    kube_api.service_accounts[("shop", "web")] = {"eks.amazonaws.com/role-arn": "arn:role"}
    proxy = start_kube_faults(kube_api.url)
    yield proxy
    proxy.server.shutdown()
    proxy.server.server_close()


@pytest.fixture
def flaky(faults: KubeFaults) -> KubeClient:
    found = KubeClient.from_environment(faults.url)
    assert found is not None
    return found


SA_PATH = "/serviceaccounts/web"


def test_429_and_503_are_retried_then_succeed(flaky: KubeClient, faults: KubeFaults) -> None:
    faults.faults += [(429, None), (503, None), (500, None)]
    account = flaky.service_account("shop", "web")
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "arn:role"}
    assert faults.count("GET", SA_PATH) == 4


def test_post_is_retried_too(flaky: KubeClient, faults: KubeFaults, kube_api: KubeAPI) -> None:
    faults.faults.append((502, None))
    token = flaky.token_request("shop", "web", "web-0", "uid-1", "aud")
    assert kube_api.signer.verify(token) is not None
    assert faults.count("POST", "/serviceaccounts/web/token") == 2


def test_dropped_connection_is_retried(flaky: KubeClient, faults: KubeFaults) -> None:
    faults.faults.append((0, None))
    assert flaky.service_account("shop", "web")["metadata"]["name"] == "web"
    assert faults.count("GET", SA_PATH) == 2


def test_retry_after_is_honoured(flaky: KubeClient, faults: KubeFaults) -> None:
    faults.faults.append((429, "1"))
    flaky.service_account("shop", "web")
    (first, *_), (second, *_) = faults.calls
    assert second - first >= 0.95  # at least the header's second (jitter only adds)
    assert len(faults.calls) == 2


def test_retry_after_past_the_deadline_gives_up_at_once(
    flaky: KubeClient, faults: KubeFaults
) -> None:
    faults.faults.append((429, "30"))
    started = time.monotonic()
    with pytest.raises(
        PermissionDenied, match="failed to get service account shop/web: 429 injected fault"
    ):
        flaky.service_account("shop", "web", deadline=started + 2)
    assert time.monotonic() - started < 1  # did not sleep towards a retry it cannot make
    assert faults.count("GET", SA_PATH) == 1


def test_persistent_5xx_ends_at_the_deadline_with_the_callers_error(
    flaky: KubeClient, faults: KubeFaults
) -> None:
    faults.faults += [(503, None)] * 100
    started = time.monotonic()
    with pytest.raises(Unavailable, match=r"failed to retrieve region from node\. error 503"):
        flaky.node_region("shop", "web-0", deadline=started + 1.5)
    assert time.monotonic() - started < 2.5
    assert 2 <= faults.count("GET", "/pods/web-0") <= kube.MAX_ATTEMPTS


def test_unreachable_api_is_unavailable_after_retries() -> None:
    client = KubeClient(url=f"http://127.0.0.1:{free_port()}")  # nobody listens there
    started = time.monotonic()
    with pytest.raises(
        Unavailable,
        match=r"cannot reach the Kubernetes API at "
        r"http://127\.0\.0\.1:\d+ \(ConnectionError\)",
    ):
        client.service_account("shop", "web", deadline=started + 1)
    assert 0.1 < time.monotonic() - started < 2


@pytest.mark.parametrize("status", [403, 404, 400, 409])
def test_other_4xx_are_not_retried(flaky: KubeClient, faults: KubeFaults, status: int) -> None:
    faults.faults += [(status, None), (status, None)]
    with pytest.raises(
        PermissionDenied, match=f"failed to get service account shop/web: {status} injected fault"
    ):
        flaky.service_account("shop", "web")
    assert faults.count("GET", SA_PATH) == 1


def test_missing_service_account_is_not_retried(flaky: KubeClient, faults: KubeFaults) -> None:
    with pytest.raises(PermissionDenied, match="failed to get service account shop/nobody: 404"):
        flaky.service_account("shop", "nobody")
    assert faults.count("GET", "/serviceaccounts/nobody") == 1


def test_retry_after_forms() -> None:
    def reply(value: str) -> requests.Response:
        response = requests.Response()
        response.headers["Retry-After"] = value
        return response

    assert kube._retry_after(reply("2")) == 2.0
    assert kube._retry_after(reply("0.5")) == 0.5
    assert kube._retry_after(reply("-3")) == 0.0
    assert kube._retry_after(reply("soon")) == 0.0
    assert kube._retry_after(reply("nan")) == 0.0
    later = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 < kube._retry_after(reply(later)) <= 30
    assert kube._retry_after(requests.Response()) == 0.0


# ---------------------------------------------------------------- rate limit


def test_rate_limit_spaces_calls_after_the_burst(kube_api: KubeAPI) -> None:
    client = KubeClient(url=kube_api.url, qps=5, burst=2)
    started = time.monotonic()
    for _ in range(6):
        client.service_account("shop", "web")
    assert time.monotonic() - started >= 0.5  # 2 at once, then 4 at 5/s: ~0.8 s


def test_rate_limit_is_shared_by_threads(kube_api: KubeAPI) -> None:
    client = KubeClient(url=kube_api.url, qps=10, burst=1)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            client.service_account("shop", "web")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(8)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert time.monotonic() - started >= 0.5  # 1 at once, then 7 at 10/s: ~0.7 s


def test_rate_limited_call_fails_fast_before_its_deadline(kube_api: KubeAPI) -> None:
    client = KubeClient(url=kube_api.url, qps=1, burst=1)
    client.service_account("shop", "web")  # takes the only slot; the next is 1 s away
    before = kube_api.count("GET", SA_PATH)
    started = time.monotonic()
    with pytest.raises(Unavailable, match=r"rate limited \(--kube-qps 1, --kube-burst 1\)"):
        client.service_account("shop", "web", deadline=started + 0.3)
    assert time.monotonic() - started < 0.2
    assert kube_api.count("GET", SA_PATH) == before
    # a refused call took no slot: one with time enough waits for it and goes through
    client.service_account("shop", "web", deadline=time.monotonic() + 3)


def test_rate_limit_applies_to_retries(faults: KubeFaults) -> None:
    client = KubeClient(url=faults.url, qps=2, burst=1)
    faults.faults += [(503, None), (503, None)]
    started = time.monotonic()
    client.service_account("shop", "web")
    assert time.monotonic() - started >= 0.9  # 3 attempts, 1 at once then 2 at 2/s


def test_rate_limiter_settings() -> None:
    with pytest.raises(ValueError, match="--kube-qps"):
        RateLimiter(-1, 10)
    with pytest.raises(ValueError, match="--kube-qps"):
        RateLimiter(float("nan"), 10)
    with pytest.raises(ValueError, match="--kube-burst"):
        RateLimiter(5, 0)
    unlimited = RateLimiter(0, 0)
    assert all(unlimited.reserve(time.monotonic()) == 0 for _ in range(1000))
    bucket = RateLimiter(4, 3)
    far = time.monotonic() + 60
    waits = [bucket.reserve(far) for _ in range(5)]
    assert waits[:3] == [0, 0, 0]
    assert waits[3] == pytest.approx(0.25, abs=0.05)
    assert waits[4] == pytest.approx(0.5, abs=0.05)  # reservations queue up in order
    assert bucket.reserve(time.monotonic() + 0.1) is None


def test_flag_defaults_and_ascp_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(ServeConfig)}
    assert (
        (defaults["kube_qps"], defaults["kube_burst"])
        == (kube.DEFAULT_QPS, kube.DEFAULT_BURST)
        == (5, 10)
    )
    args = parser().parse_args(["serve"])
    assert (args.kube_qps, args.kube_burst) == (5.0, 10)
    args = parser().parse_args(["serve", "--qps", "20", "-burst=40"])
    assert (args.kube_qps, args.kube_burst) == (20.0, 40)
    args = parser().parse_args(["serve", "-kube-qps", "2.5", "--kube-burst=3"])
    assert (args.kube_qps, args.kube_burst) == (2.5, 3)
    monkeypatch.setenv("CSIPROVIDER_KUBE_QPS", "50")
    monkeypatch.setenv("CSIPROVIDER_KUBE_BURST", "100")
    args = parser().parse_args(["serve"])
    assert (args.kube_qps, args.kube_burst) == (50.0, 100)


async def test_daemon_builds_its_client_with_the_limits(
    serve_config: Callable[..., ServeConfig], kube_api: KubeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[KubeClient] = []
    original = KubeClient.__post_init__

    def record(self: KubeClient) -> None:
        original(self)
        made.append(self)

    monkeypatch.setattr(KubeClient, "__post_init__", record)
    async with running(serve_config(kube_api_url=kube_api.url, kube_qps=2.5, kube_burst=7)):
        pass
    assert [(c.limiter.qps, c.limiter.burst) for c in made] == [(2.5, 7)]


async def test_deleted_hmac_secret_is_recreated_and_versions_follow_it(
    serve_config: Callable[..., ServeConfig], kube_api: KubeAPI
) -> None:
    """vault-csi-provider's e2e test 11: delete the key Secret, it comes back, and the
    versions change with it; Mounts meanwhile never wait for the API server."""
    config = serve_config(
        hmac_key_file=None,
        hmac_secret_name="refreshed",
        hmac_secret_namespace="csi",
        kube_api_url=kube_api.url,
        hmac_refresh_interval=0.2,
    )
    objects = [{"objectName": "p", "backend": "file", "path": "db/password"}]
    async with running(config) as stubs:
        before = list((await stubs["csiprovider"].Mount(mount_request(objects))).object_version)
        reads = kube_api.count("GET", "/namespaces/csi/secrets/refreshed")
        for _ in range(20):
            await stubs["csiprovider"].Mount(mount_request(objects))
        assert kube_api.count("GET", "/namespaces/csi/secrets/refreshed") - reads <= 2
        del kube_api.secrets[("csi", "refreshed")]
        for _ in range(100):
            await asyncio.sleep(0.05)
            if ("csi", "refreshed") in kube_api.secrets:
                break
        assert ("csi", "refreshed") in kube_api.secrets  # re-created
        await asyncio.sleep(0.3)
        after = list((await stubs["csiprovider"].Mount(mount_request(objects))).object_version)
    assert before != after

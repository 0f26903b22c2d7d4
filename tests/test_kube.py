"""The Kubernetes API calls, against the API stand-in: TokenRequest and the HMAC key
Secret (get-or-create, race-safe, read once per daemon); the client-side rate limit
(--kube-qps/--kube-burst) and the retries of 429, 5xx and dropped connections, through a
fault-injecting proxy in front of the stand-in.

Schedules (backoff, deadlines, the rate limit) run on a simulated clock (`FakeClock`, the
client's `clock` seam): the test checks when each request was sent in simulated time, which
no machine's speed changes, instead of timing real sleeps."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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


class FakeClock:
    """Simulated time for the client (a `kube.Clock`): it moves only when the client
    sleeps, by exactly what it asked for, so the schedule of its requests is the same on
    any machine. `frozen`: sleeps are recorded but time stays put, so threads that race
    for rate-limit slots all reserve at one instant."""

    def __init__(self, *, frozen: bool = False) -> None:
        self.now = 1000.0
        self.frozen = frozen
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            if not self.frozen:
                self.now += seconds


class Sent(requests.Session):
    """The client's HTTP session, noting (simulated time, method, path) of each request
    it sends. With `status` it is the API server itself and answers every request with
    that status: no network, so the per-request timeout the client derives from a
    simulated deadline plays no part."""

    def __init__(self, clock: FakeClock, status: int | None = None) -> None:
        super().__init__()
        self.trust_env = False
        self.clock = clock
        self.status = status
        self.sent: list[tuple[float, str, str]] = []

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> requests.Response:
        self.sent.append((self.clock.now, str(method), urlsplit(str(url)).path))
        if self.status is None:
            return super().request(method, url, *args, **kwargs)
        response = requests.Response()
        response.status_code = self.status
        response.reason = "injected"
        response._content = b'{"kind": "Status", "message": "injected fault"}'
        return response

    def times(self) -> list[float]:
        """When each request was sent, in simulated seconds since the first."""
        return [t - self.sent[0][0] for t, _, _ in self.sent]


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
def with_web(kube_api: KubeAPI) -> KubeAPI:
    """The API stand-in, holding service account shop/web."""
    kube_api.service_accounts[("shop", "web")] = {"eks.amazonaws.com/role-arn": "arn:role"}
    return kube_api


@pytest.fixture
def faults(with_web: KubeAPI) -> Iterator[KubeFaults]:
    proxy = start_kube_faults(with_web.url)
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


def test_retry_after_past_the_deadline_gives_up_at_once(faults: KubeFaults) -> None:
    clock = FakeClock()
    client = KubeClient(url=faults.url, session=Sent(clock), clock=clock)
    faults.faults.append((429, "30"))
    with pytest.raises(
        PermissionDenied, match="failed to get service account shop/web: 429 injected fault"
    ):
        client.service_account("shop", "web", deadline=clock.now + 20)
    assert clock.slept == []  # did not sleep towards a retry it cannot make
    assert faults.count("GET", SA_PATH) == 1


def test_persistent_5xx_ends_at_the_deadline_with_the_callers_error() -> None:
    clock = FakeClock()
    api = Sent(clock, status=503)
    client = KubeClient(url="http://kube.invalid", session=api, clock=clock)
    # the first backoff (at most 0.2 s) always fits; all 7 (4.5 s on average) virtually never
    deadline = clock.now + 0.3
    with pytest.raises(Unavailable, match=r"failed to retrieve region from node\. error 503"):
        client.node_region("shop", "web-0", deadline=deadline)
    assert {path for _, _, path in api.sent} == {"/api/v1/namespaces/shop/pods/web-0"}
    assert 2 <= len(api.sent) <= kube.MAX_ATTEMPTS  # retried, until the deadline
    assert clock.now < deadline  # and never slept past it


def test_unreachable_api_is_unavailable_after_retries() -> None:
    clock = FakeClock()
    api = Sent(clock)
    nobody = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    client = KubeClient(url=nobody, session=api, clock=clock)
    with pytest.raises(
        Unavailable,
        match=r"cannot reach the Kubernetes API at "
        r"http://127\.0\.0\.1:\d+ \(ConnectionError\)",
    ):
        client.service_account("shop", "web", deadline=clock.now + 60)
    assert len(api.sent) == kube.MAX_ATTEMPTS  # every attempt made, with a backoff between
    assert len(clock.slept) == kube.MAX_ATTEMPTS - 1 and all(d >= 0 for d in clock.slept)


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


def test_rate_limit_spaces_calls_after_the_burst(with_web: KubeAPI) -> None:
    clock = FakeClock()
    api = Sent(clock)
    client = KubeClient(url=with_web.url, qps=5, burst=2, session=api, clock=clock)
    for _ in range(6):
        client.service_account("shop", "web")
    assert api.times() == pytest.approx([0, 0, 0.2, 0.4, 0.6, 0.8])  # 2 at once, then 5/s


def test_rate_limit_is_shared_by_threads(with_web: KubeAPI) -> None:
    clock = FakeClock(frozen=True)  # every thread reserves at the same instant
    api = Sent(clock)
    client = KubeClient(url=with_web.url, qps=10, burst=1, session=api, clock=clock)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            client.service_account("shop", "web")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(api.sent) == 8
    # one bucket for all: 1 at once, then each thread waits for its own later slot at 10/s
    assert sorted(clock.slept) == pytest.approx([0.1 * n for n in range(1, 8)])


def test_rate_limited_call_fails_fast_before_its_deadline(with_web: KubeAPI) -> None:
    clock = FakeClock()
    client = KubeClient(url=with_web.url, qps=1, burst=1, session=Sent(clock), clock=clock)
    client.service_account("shop", "web")  # takes the only slot; the next is 1 s away
    before = with_web.count("GET", SA_PATH)
    with pytest.raises(Unavailable, match=r"rate limited \(--kube-qps 1, --kube-burst 1\)"):
        client.service_account("shop", "web", deadline=clock.now + 0.3)
    assert clock.slept == []  # refused at once, without waiting
    assert with_web.count("GET", SA_PATH) == before
    # a refused call took no slot: one with time enough waits for it (1 s, not 2) and
    # goes through
    client.service_account("shop", "web", deadline=clock.now + 30)
    assert clock.slept == pytest.approx([1.0])
    assert with_web.count("GET", SA_PATH) == before + 1


def test_rate_limit_applies_to_retries(faults: KubeFaults) -> None:
    clock = FakeClock()
    api = Sent(clock)
    client = KubeClient(url=faults.url, qps=2, burst=1, session=api, clock=clock)
    faults.faults += [(503, None), (503, None)]
    client.service_account("shop", "web")
    # 3 attempts, 1 at once then 2 at 2/s: each retry waits out its backoff (at most
    # 0.2 s, then 0.4 s) and then the rest of its rate-limit slot
    assert api.times() == pytest.approx([0, 0.5, 1.0])


def test_rate_limiter_settings() -> None:
    with pytest.raises(ValueError, match="--kube-qps"):
        RateLimiter(-1, 10)
    with pytest.raises(ValueError, match="--kube-qps"):
        RateLimiter(float("nan"), 10)
    with pytest.raises(ValueError, match="--kube-burst"):
        RateLimiter(5, 0)
    clock = FakeClock()
    unlimited = RateLimiter(0, 0, clock)
    assert all(unlimited.reserve(clock.now) == 0 for _ in range(1000))
    bucket = RateLimiter(4, 3, clock)
    far = clock.now + 60
    waits = [bucket.reserve(far) for _ in range(5)]
    assert waits == [0, 0, 0, 0.25, 0.5]  # reservations queue up in order
    assert bucket.reserve(clock.now + 0.1) is None
    clock.now += 0.75  # the two reserved slots have passed, the bucket holds one again
    assert bucket.reserve(clock.now) == 0


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

    def config(refresh: float) -> ServeConfig:
        return serve_config(
            hmac_key_file=None,
            hmac_secret_name="refreshed",
            hmac_secret_namespace="csi",
            kube_api_url=kube_api.url,
            hmac_refresh_interval=refresh,
        )

    objects = [{"objectName": "p", "backend": "file", "path": "db/password"}]
    secret = "/namespaces/csi/secrets/refreshed"

    async def versions(stub: Any) -> list[Any]:
        return list((await stub.Mount(mount_request(objects))).object_version)

    async with running(config(refresh=3600)) as stubs:  # no re-read falls due meanwhile
        reads = kube_api.count("GET", secret)
        for _ in range(20):
            await versions(stubs["csiprovider"])
        assert kube_api.count("GET", secret) == reads  # a Mount never reads the Secret
    loop = asyncio.get_running_loop()
    async with running(config(refresh=0.2)) as stubs:
        before = await versions(stubs["csiprovider"])
        del kube_api.secrets[("csi", "refreshed")]
        guard = loop.time() + 60  # only against a hang: a busy machine waits
        while (after := await versions(stubs["csiprovider"])) == before:
            assert loop.time() < guard, "the versions did not follow a new key in 60 s"
            await asyncio.sleep(0.05)
        assert ("csi", "refreshed") in kube_api.secrets  # re-created
    assert before != after

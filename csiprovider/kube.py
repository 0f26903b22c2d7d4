"""The few Kubernetes API calls the daemon makes: TokenRequest for a pod's service
account (when the driver passed no token for the audience) and get-or-create of the
Secret holding the HMAC key. Plain HTTPS with the daemon's own service-account token.

Every call goes through one token bucket per client (--kube-qps/--kube-burst, ASCP's
--qps/--burst: a node drain remounts many pods at once and the API server throttles) and
is retried on 429, 5xx and connection failures with exponential backoff and full jitter,
honouring Retry-After, all within the caller's deadline (a default when it passes none).

Deadlines are readings of the client's clock: `time.monotonic()` unless a `Clock` was given.
"""

from __future__ import annotations

import base64
import email.utils
import logging
import math
import os
import random
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import requests

from csiprovider.errors import FailedPrecondition, MountError, PermissionDenied, Unavailable

log = logging.getLogger("csiprovider.kube")

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_TTL_SECONDS = 900  # as vault-csi-provider: short-lived and bound to the pod
DEFAULT_QPS = 5.0  # ASCP's --qps and --burst defaults (client-go's too)
DEFAULT_BURST = 10
DEFAULT_TIMEOUT = 10.0  # seconds a call may take, retries included, when no deadline is given
REQUEST_TIMEOUT = 10.0  # one HTTP attempt at most
FIRST_BACKOFF = 0.2
MAX_BACKOFF = 2.0
MAX_ATTEMPTS = 8
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class Clock(Protocol):
    """Where the client reads the time and waits: rate limiting, backoff, Retry-After and
    deadlines are all measured on it. The daemon uses `SystemClock`; a test passes a
    simulated clock so that these schedules are checked exactly, in milliseconds, however
    fast or loaded the machine is."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock: `time.monotonic()` and `time.sleep()`."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class RateLimiter:
    """A token bucket: `burst` calls at once, then `qps` per second. Thread-safe; a caller
    reserves a slot under the lock and sleeps outside it, so waiters are served in order
    and nobody holds the lock while waiting. qps 0 turns the limit off. `clock` is the
    time the bucket refills by (see `Clock`)."""

    def __init__(self, qps: float, burst: int, clock: Clock | None = None) -> None:
        if math.isnan(qps) or qps < 0:
            raise ValueError(f"--kube-qps must be 0 (no limit) or more, not {qps}")
        if qps > 0 and burst < 1:
            raise ValueError(f"--kube-burst must be at least 1, not {burst}")
        self.qps = qps
        self.burst = burst
        self._clock = clock if clock is not None else SystemClock()
        self._tokens = float(burst)
        self._last = self._clock.monotonic()
        self._lock = threading.Lock()

    def reserve(self, deadline: float) -> float | None:
        """Take a slot: the seconds to wait for it, or None (and nothing taken) when the
        wait would end after `deadline`."""
        if self.qps == 0:
            return 0.0
        with self._lock:
            now = self._clock.monotonic()
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
            self._last = now
            wait = 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.qps
            if wait > 0 and now + wait > deadline:
                return None
            self._tokens -= 1
            return wait


@dataclass
class KubeClient:
    url: str
    token_file: Path | None = None
    ca_file: str | bool = True
    session: requests.Session = field(default_factory=requests.Session, repr=False)
    qps: float = DEFAULT_QPS
    burst: int = DEFAULT_BURST
    # The time that deadlines, backoff, Retry-After and the rate limit are measured on;
    # a seam for tests (see Clock), the real clock otherwise.
    clock: Clock = field(default_factory=SystemClock, repr=False)
    limiter: RateLimiter = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(self.qps, self.burst, self.clock)

    @classmethod
    def from_environment(
        cls,
        url: str = "",
        token_file: str = "",
        ca_file: str = "",
        qps: float = DEFAULT_QPS,
        burst: int = DEFAULT_BURST,
    ) -> KubeClient | None:
        """Flags first, then the in-cluster service account; None outside a cluster."""
        host, port = (
            os.environ.get("KUBERNETES_SERVICE_HOST"),
            os.environ.get("KUBERNETES_SERVICE_PORT", "443"),
        )
        if not url and host:
            url = f"https://{host}:{port}" if ":" not in host else f"https://[{host}]:{port}"
        if not url:
            return None
        token = Path(token_file) if token_file else SA_DIR / "token"
        ca: str | bool = ca_file or (
            str(SA_DIR / "ca.crt") if (SA_DIR / "ca.crt").exists() else True
        )
        client = cls(
            url=url.rstrip("/"),
            token_file=token if token.exists() else None,
            ca_file=ca,
            qps=qps,
            burst=burst,
        )
        client.session.trust_env = False
        return client

    def _request(
        self, method: str, path: str, body: Any = None, deadline: float | None = None
    ) -> requests.Response:
        """One call: a rate-limit slot per attempt; 429, 5xx and connection failures are
        retried until the deadline, then the last reply is the caller's to report (or
        Unavailable when there was none). Other replies are returned at once."""
        if deadline is None:
            deadline = self.clock.monotonic() + DEFAULT_TIMEOUT
        backoff = FIRST_BACKOFF
        response: requests.Response | None = None
        failure: requests.RequestException | None = None
        for attempt in range(1, MAX_ATTEMPTS + 1):
            wait = self.limiter.reserve(deadline)
            if wait is None:
                if attempt == 1:
                    raise Unavailable(
                        f"the Kubernetes API client is rate limited (--kube-qps "
                        f"{self.qps:g}, --kube-burst {self.burst}): no request slot for "
                        f"{method} {path} before the deadline"
                    )
                break
            if wait:
                self.clock.sleep(wait)
            response, failure = None, None
            try:
                response = self._send(method, path, body, deadline)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if isinstance(exc, requests.exceptions.SSLError):
                    raise self._unreachable(exc) from None  # configuration, not transient
                failure = exc
            except requests.RequestException as exc:
                raise self._unreachable(exc) from None
            if response is not None and response.status_code not in RETRY_STATUSES:
                return response
            delay = random.uniform(0, backoff)  # full jitter: a drained node's calls spread
            backoff = min(backoff * 2, MAX_BACKOFF)
            if response is not None:
                delay = max(delay, _retry_after(response))
            if attempt == MAX_ATTEMPTS or self.clock.monotonic() + delay >= deadline:
                break
            log.debug(
                "retrying a Kubernetes API call",
                extra={
                    "fields": {
                        "method": method,
                        "path": path,
                        "attempt": attempt,
                        "delay": round(delay, 3),
                        "status": response.status_code if response is not None else None,
                        "error": type(failure).__name__ if failure is not None else None,
                    }
                },
            )
            self.clock.sleep(delay)
        if response is not None:
            return response
        assert failure is not None
        raise self._unreachable(failure) from None

    def _send(self, method: str, path: str, body: Any, deadline: float) -> requests.Response:
        headers = {"Accept": "application/json"}
        if self.token_file is not None:
            # Re-read each time: kubelet rotates the projected token file.
            headers["Authorization"] = f"Bearer {self.token_file.read_text().strip()}"
        timeout = max(0.1, min(REQUEST_TIMEOUT, deadline - self.clock.monotonic()))
        return self.session.request(
            method,
            self.url + path,
            json=body,
            headers=headers,
            verify=self.ca_file,
            timeout=timeout,
        )

    def _unreachable(self, exc: requests.RequestException) -> Unavailable:
        return Unavailable(f"cannot reach the Kubernetes API at {self.url} ({type(exc).__name__})")

    def token_request(
        self,
        namespace: str,
        service_account: str,
        pod_name: str,
        pod_uid: str,
        audience: str,
        *,
        deadline: float | None = None,
    ) -> str:
        """A 15-minute token for the pod's service account, bound to the pod."""
        body: dict[str, Any] = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": TOKEN_TTL_SECONDS,
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": pod_name,
                    "uid": pod_uid,
                },
            },
        }
        if audience:
            body["spec"]["audiences"] = [audience]
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token"
        response = self._request("POST", path, body, deadline)
        if not response.ok:
            raise PermissionDenied(
                "failed to create a service account token for requesting pod "
                f"{namespace}/{pod_name} (service account {service_account}): "
                f"{_status_message(response)}; grant the daemon serviceaccounts/token create"
            )
        token = response.json().get("status", {}).get("token")
        if not isinstance(token, str) or not token:
            raise PermissionDenied(
                f"the TokenRequest for {namespace}/{service_account} returned no token"
            )
        return token

    def service_account(
        self, namespace: str, name: str, *, deadline: float | None = None
    ) -> dict[str, Any]:
        response = self._request(
            "GET", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}", deadline=deadline
        )
        if not response.ok:
            raise PermissionDenied(
                f"failed to get service account {namespace}/{name}: {_status_message(response)}"
            )
        body: dict[str, Any] = response.json()
        return body

    def node_region(self, namespace: str, pod: str, *, deadline: float | None = None) -> str:
        """The `topology.kubernetes.io/region` label of the pod's node."""
        if deadline is None:
            deadline = self.clock.monotonic() + DEFAULT_TIMEOUT  # one budget for both reads
        response = self._request(
            "GET", f"/api/v1/namespaces/{namespace}/pods/{pod}", deadline=deadline
        )
        if not response.ok:
            raise _refusal(
                response, f"failed to retrieve region from node. error {_status_message(response)}"
            )
        node = (response.json().get("spec") or {}).get("nodeName", "")
        return self.region_of_node(str(node), deadline=deadline)

    def pod_fs_group(self, namespace: str, pod: str) -> int | None:
        """The pod's `securityContext.fsGroup` (None: not set)."""
        response = self._request(
            "GET",
            f"/api/v1/namespaces/{namespace}/pods/{pod}",
            deadline=self.clock.monotonic() + DEFAULT_TIMEOUT,
        )
        if not response.ok:
            raise PermissionDenied(
                f"cannot read pod {namespace}/{pod} for its fsGroup: {_status_message(response)}"
            )
        context = (response.json().get("spec") or {}).get("securityContext") or {}
        group = context.get("fsGroup")
        return group if isinstance(group, int) and not isinstance(group, bool) else None

    def region_of_node(self, node: str, *, deadline: float | None = None) -> str:
        """The `topology.kubernetes.io/region` label of a node."""
        if deadline is None:
            deadline = self.clock.monotonic() + DEFAULT_TIMEOUT
        response = self._request("GET", f"/api/v1/nodes/{node}", deadline=deadline)
        if not response.ok:
            raise _refusal(
                response, f"failed to retrieve region from node. error {_status_message(response)}"
            )
        labels = (response.json().get("metadata") or {}).get("labels") or {}
        region = labels.get("topology.kubernetes.io/region", "")
        if not region:
            # ASCP's words; FAILED_PRECONDITION, not UNAVAILABLE: a label does not appear
            # on the node within the driver's retries, which would only cost Mounts
            raise FailedPrecondition(
                "failed to retrieve region from node. error Region not found; set region "
                "in the SecretProviderClass or label the node topology.kubernetes.io/region"
            )
        return str(region)

    def hmac_key(self, namespace: str, name: str, *, deadline: float | None = None) -> bytes:
        """Get the key Secret, creating it if absent; a lost create race re-reads it."""
        if deadline is None:
            deadline = self.clock.monotonic() + DEFAULT_TIMEOUT  # one budget for all the calls
        path = f"/api/v1/namespaces/{namespace}/secrets"
        response = self._request("GET", f"{path}/{name}", deadline=deadline)
        if response.status_code == 404:
            key = base64.b64encode(secrets.token_bytes(32)).decode()
            created = self._request(
                "POST",
                path,
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "immutable": True,
                    "metadata": {"name": name, "namespace": namespace},
                    "data": {"key": key},
                },
                deadline,
            )
            if created.status_code == 409:
                response = self._request("GET", f"{path}/{name}", deadline=deadline)
            elif created.ok:
                log.info(
                    "created HMAC key secret", extra={"fields": {"secret": f"{namespace}/{name}"}}
                )
                response = created
            else:
                raise PermissionDenied(
                    f"cannot create secret {namespace}/{name}: {_status_message(created)}"
                )
        if not response.ok:
            raise PermissionDenied(
                f"cannot read secret {namespace}/{name}: {_status_message(response)}"
            )
        data = response.json().get("data") or {}
        try:
            key_bytes = base64.b64decode(data.get("key") or "")
        except ValueError:
            key_bytes = b""
        if not key_bytes:
            raise PermissionDenied(
                f"secret {namespace}/{name} has no usable 'key'; delete it and the daemon "
                "will create a new one (object versions will change once)"
            )
        return key_bytes


def own_namespace(default: str = "") -> str:
    path = SA_DIR / "namespace"
    if path.exists():
        return path.read_text().strip()
    return os.environ.get("POD_NAMESPACE", default)


def _retry_after(response: requests.Response) -> float:
    """Retry-After in seconds (a number or an HTTP date); 0 when absent or unreadable."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return 0.0
    return seconds if math.isfinite(seconds) and seconds > 0 else 0.0


def _refusal(response: requests.Response, message: str) -> MountError:
    """The gRPC code of an API server refusal, with the driver's retries in mind: only
    what can pass a second later (429, 5xx, already retried here) is UNAVAILABLE."""
    if response.status_code in RETRY_STATUSES:
        return Unavailable(message)
    if response.status_code in (401, 403):
        return PermissionDenied(message)
    return FailedPrecondition(message)


def _status_message(response: requests.Response) -> str:
    try:
        message = response.json().get("message")
    except ValueError:
        message = None
    return f"{response.status_code} {message or response.reason}"

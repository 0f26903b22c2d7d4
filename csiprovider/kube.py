"""The few Kubernetes API calls the daemon makes: TokenRequest for a pod's service
account (when the driver passed no token for the audience) and get-or-create of the
Secret holding the HMAC key. Plain HTTPS with the daemon's own service-account token.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from csiprovider.errors import PermissionDenied, Unavailable

log = logging.getLogger("csiprovider.kube")

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_TTL_SECONDS = 900  # as vault-csi-provider: short-lived and bound to the pod


@dataclass
class KubeClient:
    url: str
    token_file: Path | None = None
    ca_file: str | bool = True
    session: requests.Session = field(default_factory=requests.Session, repr=False)

    @classmethod
    def from_environment(
        cls, url: str = "", token_file: str = "", ca_file: str = ""
    ) -> KubeClient | None:
        """Flags first, then the in-cluster service account; None outside a cluster."""
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get(
            "KUBERNETES_SERVICE_PORT", "443")
        if not url and host:
            url = f"https://{host}:{port}" if ":" not in host else f"https://[{host}]:{port}"
        if not url:
            return None
        token = Path(token_file) if token_file else SA_DIR / "token"
        ca: str | bool = ca_file or (str(SA_DIR / "ca.crt") if (SA_DIR / "ca.crt").exists()
                                     else True)
        client = cls(url=url.rstrip("/"), token_file=token if token.exists() else None,
                     ca_file=ca)
        client.session.trust_env = False
        return client

    def _request(self, method: str, path: str, body: Any = None) -> requests.Response:
        headers = {"Accept": "application/json"}
        if self.token_file is not None:
            # Re-read each time: kubelet rotates the projected token file.
            headers["Authorization"] = f"Bearer {self.token_file.read_text().strip()}"
        try:
            return self.session.request(method, self.url + path, json=body, headers=headers,
                                        verify=self.ca_file, timeout=10)
        except requests.RequestException as exc:
            raise Unavailable(
                f"cannot reach the Kubernetes API at {self.url} ({type(exc).__name__})"
            ) from None

    def token_request(
        self, namespace: str, service_account: str, pod_name: str, pod_uid: str, audience: str
    ) -> str:
        """A 15-minute token for the pod's service account, bound to the pod."""
        body: dict[str, Any] = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": TOKEN_TTL_SECONDS,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod_name,
                                   "uid": pod_uid},
            },
        }
        if audience:
            body["spec"]["audiences"] = [audience]
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token"
        response = self._request("POST", path, body)
        if not response.ok:
            raise PermissionDenied(
                "failed to create a service account token for requesting pod "
                f"{namespace}/{pod_name} (service account {service_account}): "
                f"{_status_message(response)}; grant the daemon serviceaccounts/token create"
            )
        token = response.json().get("status", {}).get("token")
        if not isinstance(token, str) or not token:
            raise PermissionDenied(f"the TokenRequest for {namespace}/{service_account} "
                                   "returned no token")
        return token

    def service_account(self, namespace: str, name: str) -> dict[str, Any]:
        response = self._request("GET", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}")
        if not response.ok:
            raise PermissionDenied(f"failed to get service account {namespace}/{name}: "
                                   f"{_status_message(response)}")
        body: dict[str, Any] = response.json()
        return body

    def node_region(self, namespace: str, pod: str) -> str:
        """The `topology.kubernetes.io/region` label of the pod's node."""
        response = self._request("GET", f"/api/v1/namespaces/{namespace}/pods/{pod}")
        if not response.ok:
            raise Unavailable(f"failed to retrieve region from node. error "
                              f"{_status_message(response)}")
        node = (response.json().get("spec") or {}).get("nodeName", "")
        response = self._request("GET", f"/api/v1/nodes/{node}")
        if not response.ok:
            raise Unavailable(f"failed to retrieve region from node. error "
                              f"{_status_message(response)}")
        labels = (response.json().get("metadata") or {}).get("labels") or {}
        region = labels.get("topology.kubernetes.io/region", "")
        if not region:
            raise Unavailable("failed to retrieve region from node. error Region not found")
        return str(region)

    def hmac_key(self, namespace: str, name: str) -> bytes:
        """Get the key Secret, creating it if absent; a lost create race re-reads it."""
        path = f"/api/v1/namespaces/{namespace}/secrets"
        response = self._request("GET", f"{path}/{name}")
        if response.status_code == 404:
            key = base64.b64encode(secrets.token_bytes(32)).decode()
            created = self._request("POST", path, {
                "apiVersion": "v1", "kind": "Secret", "immutable": True,
                "metadata": {"name": name, "namespace": namespace},
                "data": {"key": key},
            })
            if created.status_code == 409:
                response = self._request("GET", f"{path}/{name}")
            elif created.ok:
                log.info("created HMAC key secret",
                         extra={"fields": {"secret": f"{namespace}/{name}"}})
                response = created
            else:
                raise PermissionDenied(f"cannot create secret {namespace}/{name}: "
                                       f"{_status_message(created)}")
        if not response.ok:
            raise PermissionDenied(f"cannot read secret {namespace}/{name}: "
                                   f"{_status_message(response)}")
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


def _status_message(response: requests.Response) -> str:
    try:
        message = response.json().get("message")
    except ValueError:
        message = None
    return f"{response.status_code} {message or response.reason}"

"""`csiprovider mount` builds the request exactly as the driver does for a pod."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from csiprovider.local.mount import MountOptions, build_request, token_expiry
from csiprovider.local.spc import SpcError, load_spc, parse_spc

SPC = {
    "apiVersion": "secrets-store.csi.x-k8s.io/v1",
    "kind": "SecretProviderClass",
    "metadata": {"name": "web-spc", "namespace": "shop"},
    "spec": {"provider": "vault", "parameters": {"roleName": "web", "objects": "- x"}},
}


def jwt(claims: dict[str, object]) -> str:
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJSUzI1NiJ9.{body}.c2ln"


def test_request_matches_driver(tmp_path: Path) -> None:
    token = jwt({"exp": 1_900_000_000, "sub": "system:serviceaccount:shop:web"})
    opts = MountOptions(
        spc=parse_spc(SPC),
        target=tmp_path,
        socket=tmp_path / "vault.sock",
        pod_name="web-0",
        pod_namespace="shop",
        pod_uid="uid-9",
        service_account="web",
        tokens={"vault": token},
        secrets={"user": "u"},
        permission=0o640,
    )
    request = build_request(opts)
    attrs = json.loads(request.attributes)
    assert attrs == {
        "roleName": "web",
        "objects": "- x",
        "csi.storage.k8s.io/pod.name": "web-0",
        "csi.storage.k8s.io/pod.namespace": "shop",
        "csi.storage.k8s.io/pod.uid": "uid-9",
        "csi.storage.k8s.io/serviceAccount.name": "web",
        "csi.storage.k8s.io/ephemeral": "true",
        "secretProviderClass": "web-spc",
        # kubelet marshals TokenRequestStatus: "token" first, then "expirationTimestamp"
        "csi.storage.k8s.io/serviceAccount.tokens": (
            f'{{"vault":{{"token":"{token}","expirationTimestamp":"2030-03-17T17:46:40Z"}}}}'
        ),
    }
    assert request.attributes == json.dumps(attrs, sort_keys=True, separators=(",", ":"))
    assert request.permission == "416"  # JSON of 0640, as the driver encodes 0644 as "420"
    assert request.secrets == '{"user":"u"}'
    assert request.target_path == str(tmp_path)
    assert list(request.current_object_version) == []  # v1.6 sends none


def test_request_without_secret_ref_sends_null_and_go_escapes(tmp_path: Path) -> None:
    """The driver's json.Marshal: a nil secrets map is `null`; <, > and & are escaped."""
    spc = dict(SPC, spec={"provider": "x", "parameters": {"objects": "a<b>&c"}})
    request = build_request(MountOptions(spc=parse_spc(spc), target=tmp_path, socket=tmp_path))
    assert request.secrets == "null"
    assert '"objects":"a\\u003cb\\u003e\\u0026c"' in request.attributes


def test_opaque_token_expires_in_an_hour() -> None:
    assert token_expiry("not-a-jwt").endswith("Z")


def test_volume_context_wins_over_parameters(tmp_path: Path) -> None:
    spc = dict(SPC, spec={"provider": "x", "parameters": {"csi.storage.k8s.io/pod.name": "evil"}})
    opts = MountOptions(spc=parse_spc(spc), target=tmp_path, socket=tmp_path / "s")
    assert json.loads(build_request(opts).attributes)["csi.storage.k8s.io/pod.name"] == "local-pod"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"apiVersion": "v1"}, "apiVersion must be secrets-store.csi.x-k8s.io/v1"),
        ({"metadata": {}}, "metadata.name is required"),
        ({"spec": {"parameters": {}}}, "spec.provider is required"),
        ({"spec": {"provider": "x", "parameters": {"n": 5}}}, "spec.parameters.n must be a string"),
    ],
)
def test_bad_spc(change: dict[str, object], message: str) -> None:
    with pytest.raises(SpcError, match=message):
        parse_spc({**SPC, **change})


def test_load_picks_spc_from_multi_document_file(tmp_path: Path) -> None:
    path = tmp_path / "all.yaml"
    path.write_text("kind: ServiceAccount\nmetadata: {name: web}\n---\n" + json.dumps(SPC))
    assert load_spc(path).provider == "vault"
    path.write_text("kind: ServiceAccount\n")
    with pytest.raises(SpcError, match="no document of kind SecretProviderClass"):
        load_spc(path)

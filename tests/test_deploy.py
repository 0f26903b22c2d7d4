"""The deployment files, validated offline: kustomize renders every overlay, every object
passes the Kubernetes schemas strictly, every DaemonSet argument is a flag the daemon
accepts, the examples are valid, the Dockerfile keeps its promises."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from csiprovider.cli import parser
from csiprovider.local.spc import load_spc

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "daemonset"
KUBERNETES_VERSIONS = ["1.29.0", "1.31.0", "1.33.0", "1.35.0"]
OVERLAYS = [
    "",
    "overlays/driver-writes",
    "overlays/provider-writes",
    "overlays/serve-as-vault",
    "overlays/serve-as-aws",
    "overlays/file-root",
    "overlays/file-root-demo",
]
EXAMPLES = sorted((DEPLOY / "examples").glob("*.yaml"))

# The SecretProviderClass CRD (secrets-store.csi.x-k8s.io/v1) as the API server checks it.
SPC_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "secrets-store.csi.x-k8s.io/v1"},
        "kind": {"const": "SecretProviderClass"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "provider": {"type": "string"},
                "parameters": {"type": "object", "additionalProperties": {"type": "string"}},
                "secretObjects": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "secretName": {"type": "string"},
                            "type": {"type": "string"},
                            "labels": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                            "annotations": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                            "data": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "objectName": {"type": "string"},
                                        "key": {"type": "string"},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def kustomize(path: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed to render daemonset/ (kustomize); install it"
    out = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY / path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def validate(doc: dict[str, Any]) -> None:
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlays_render_and_validate(overlay: str) -> None:
    docs = kustomize(overlay)
    kinds = sorted(d["kind"] for d in docs if d["kind"] != "ConfigMap")
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "DaemonSet",
        "Namespace",
        "Role",
        "RoleBinding",
        "ServiceAccount",
    ]
    for doc in docs:
        validate(doc)
    (daemonset,) = [d for d in docs if d["kind"] == "DaemonSet"]
    container = daemonset["spec"]["template"]["spec"]["containers"][0]
    args = parser().parse_args(["serve", *container["args"]])  # every flag exists
    assert args.providers_dir == "/var/run/secrets-store-csi-providers"
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["providers-dir"]["mountPath"] == "/var/run/secrets-store-csi-providers"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"operator": "Exists"} in daemonset["spec"]["template"]["spec"]["tolerations"]
    if overlay.endswith("provider-writes"):
        assert args.write_mode == "provider"
        assert mounts["kubelet-pods"]["mountPropagation"] == "HostToContainer"
    if overlay.endswith("serve-as-vault"):
        assert args.names == ["vault", "csiprovider"]
    if overlay.endswith("serve-as-aws"):
        assert args.names == ["aws", "csiprovider"]
    env = {e["name"]: e for e in container["env"]}
    assert "AWS_REGION" not in env  # no region hard-coded: the node's own
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    if "file-root" in overlay:
        assert args.file_root and mounts["files"]["mountPath"] == args.file_root
        assert mounts["files"]["readOnly"] is True


def test_kind_overlay_renders_and_validates() -> None:
    docs = kustomize("../e2e/kind")  # the README's first steps, with the kind image
    for doc in docs:
        validate(doc)
    (configmap,) = [d for d in docs if d["kind"] == "ConfigMap"]
    (daemonset,) = [d for d in docs if d["kind"] == "DaemonSet"]
    spec = daemonset["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["files"]["configMap"]["name"] == configmap["metadata"]["name"]
    args = parser().parse_args(["serve", *spec["containers"][0]["args"]])
    assert args.file_root == "/etc/csiprovider/files"
    assert (ROOT / "e2e" / "kind" / "run.sh").stat().st_mode & 0o111


def test_rbac_is_least_privilege() -> None:
    docs = {d["kind"]: d for d in kustomize("")}
    rules = docs["ClusterRole"]["rules"]
    assert all(set(r["verbs"]) <= {"get", "create"} for r in rules)
    assert {tuple(r["resources"]) for r in rules} == {
        ("serviceaccounts/token",),
        ("serviceaccounts",),
        ("nodes",),
    }
    secret_rules = docs["Role"]["rules"]
    assert secret_rules[0]["resourceNames"] == ["csiprovider-hmac-key"]


def test_driver_settings() -> None:
    csidriver = yaml.safe_load((DEPLOY / "driver" / "csidriver.yaml").read_text())
    validate(csidriver)
    audiences = {t["audience"] for t in csidriver["spec"]["tokenRequests"]}
    assert audiences == {"vault", "sts.amazonaws.com", "pods.eks.amazonaws.com"}
    assert csidriver["spec"]["requiresRepublish"] is True
    values = yaml.safe_load((DEPLOY / "driver" / "values.yaml").read_text())
    assert {t["audience"] for t in values["tokenRequests"]} == audiences
    assert values["enableSecretRotation"] is True and values["syncSecret"]["enabled"] is True


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_examples_are_valid(example: Path) -> None:
    docs = [d for d in yaml.safe_load_all(example.read_text()) if d]
    kinds = [d["kind"] for d in docs]
    # the Secret a volume's nodePublishSecretRef names (sops-age.yaml), when there is one
    assert kinds in (["SecretProviderClass", "Pod"], ["SecretProviderClass", "Secret", "Pod"])
    jsonschema.validate(docs[0], SPC_SCHEMA)
    spc = load_spc(example)
    pod = docs[-1]
    validate(pod)
    volume = pod["spec"]["volumes"][0]["csi"]
    assert volume["driver"] == "secrets-store.csi.k8s.io" and volume["readOnly"] is True
    assert volume["volumeAttributes"]["secretProviderClass"] == spc.name
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    ref = volume.get("nodePublishSecretRef")
    assert set(secrets) == ({ref["name"]} if ref else set())
    for secret in secrets.values():
        validate(secret)
        assert secret["metadata"]["namespace"] == pod["metadata"]["namespace"]
        # the driver's filteredWatchSecret (on by default) sees only Secrets so labelled
        assert secret["metadata"]["labels"]["secrets-store.csi.k8s.io/used"] == "true"


def test_dockerfile() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", text, re.M)
    assert len(stages) == 2 and all("slim" in s for s in stages)
    final = text.split("\nFROM ")[-1]
    assert re.search(r"^USER 0$", final, re.M)  # ASCP's and vault-helm's charts set no user
    assert 'ENTRYPOINT ["csiprovider", "serve"]' in final
    assert "org.opencontainers.image.version" in final
    # Debian's python3 is installed with apt in the final stage; no compiler, pip or venv.
    assert not re.search(r"gcc|build-essential|pip install|python3-venv|python3-pip", final)
    assert "COPY --from=build /opt/csiprovider /opt/csiprovider" in final

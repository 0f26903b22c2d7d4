"""The Helm chart (charts/csiprovider), with the real helm 3 and helm 4 (testkit/helm.py):
`helm lint --strict` and `helm template` for every values set in charts/csiprovider/ci/,
every rendered object validated strictly against the Kubernetes schemas (the
prometheus-operator objects against their CRDs' shape), every container argument parsed
by the daemon's own parser, bad values refused by values.schema.json, and the default
install (and each values set that has a kustomize overlay) compared with
`kubectl kustomize daemonset/...`.

The driver sub-chart is declared in Chart.yaml but never downloaded (no network): helm
refuses a chart whose declared dependency is missing from charts/, even when its
condition is false (test_missing_dependency_is_refused). The tests therefore render a
copy of the chart with a stand-in `secrets-store-csi-driver` chart in charts/ that only
echoes the values it receives, which also shows what the real driver chart would get.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock

import jsonschema
import kubernetes_validate
import pytest
import yaml

from csiprovider.cli import parser
from testkit.helm import MAJORS, Helm, helm, kubectl_binary

pytestmark = pytest.mark.helm

Doc = dict[str, Any]
Render = Callable[[int, str], tuple[Doc, ...]]

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "csiprovider"
CI = CHART / "ci"
VALUE_SETS = sorted(p.name.removesuffix("-values.yaml") for p in CI.glob("*-values.yaml"))
DOC = ROOT / "docs" / "helm.md"
RELEASE = NAMESPACE = "csiprovider"  # as daemonset/base names its objects
KUBERNETES_VERSIONS = ["1.29.0", "1.31.0", "1.33.0", "1.35.0"]
DRIVER = "secrets-store-csi-driver"
STUB_VALUES = "test-driver-values"  # the stand-in driver chart's ConfigMap
NOTES_PROBE = "test-notes"  # a ConfigMap holding the rendered NOTES.txt (test copy only)
NAMESPACED = {
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "DaemonSet",
    "Service",
    "ConfigMap",
    "ServiceMonitor",
    "PodMonitor",
    "PrometheusRule",
}

BASE_KINDS = [
    "ClusterRole",
    "ClusterRoleBinding",
    "DaemonSet",
    "Role",
    "RoleBinding",
    "ServiceAccount",
]
KINDS: dict[str, list[str]] = {
    "all-names": ["ClusterRole", "ClusterRoleBinding", "DaemonSet", "ServiceAccount"],
    "monitoring": sorted(
        [*BASE_KINDS, "ConfigMap", "PodMonitor", "PrometheusRule", "Service", "ServiceMonitor"]
    ),
}


# -- helm, the chart copy, rendering ------------------------------------------------------


@pytest.fixture(scope="session")
def helm_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("helm-home")


@pytest.fixture(scope="session", params=MAJORS, ids=[f"helm{m}" for m in MAJORS])
def helm_cli(request: pytest.FixtureRequest, helm_home: Path) -> Helm:
    return helm(request.param, helm_home)


def _copy_chart(dest: Path) -> Path:
    """The chart without anything `helm dependency build` may have left in charts/."""
    shutil.copytree(CHART, dest, ignore=shutil.ignore_patterns("charts", "Chart.lock"))
    return dest


@pytest.fixture(scope="session")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the chart with the stand-in driver chart and the NOTES probe."""
    copy = _copy_chart(tmp_path_factory.mktemp("chart") / "csiprovider")
    declared = yaml.safe_load((CHART / "Chart.yaml").read_text())["dependencies"]
    (dependency,) = [d for d in declared if d["name"] == DRIVER]
    stub = copy / "charts" / DRIVER
    (stub / "templates").mkdir(parents=True)
    (stub / "Chart.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v2",
                "name": DRIVER,
                "version": "1.6.0",
                "description": "test stand-in: echoes its values",
            }
        )
    )
    (stub / "templates" / "values.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
        f"  name: {STUB_VALUES}\n  namespace: {{{{ .Release.Namespace }}}}\n"
        "data:\n  values: {{ toJson .Values | quote }}\n"
    )
    assert dependency["condition"] == f"{DRIVER}.install"
    (copy / "templates" / "zz-test-notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
        f"  name: {NOTES_PROBE}\n  namespace: {{{{ .Release.Namespace }}}}\n"
        'data:\n  notes: {{ include "csiprovider/templates/NOTES.txt" . | toJson }}\n'
    )
    return copy


def _template(
    cli: Helm, chart: Path, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return cli.run(["template", RELEASE, str(chart), "--namespace", NAMESPACE, *args], check=check)


@cache
def _render(major: int, home: Path, chart: Path, value_set: str) -> tuple[Doc, ...]:
    out = _template(
        helm(major, home), chart, "--values", str(CI / f"{value_set}-values.yaml")
    ).stdout
    return tuple(d for d in yaml.safe_load_all(out) if d)


@pytest.fixture(scope="session")
def render(helm_home: Path, chart: Path) -> Render:
    """Rendered objects of a values set, the test probes included; cached per session."""
    return lambda major, value_set: _render(major, helm_home, chart, value_set)


def objects(docs: tuple[Doc, ...]) -> list[Doc]:
    """The chart's own objects (without the stand-in driver's and the NOTES probe)."""
    return [d for d in docs if d["metadata"]["name"] not in (STUB_VALUES, NOTES_PROBE)]


def notes(docs: tuple[Doc, ...]) -> str:
    (probe,) = [d for d in docs if d["metadata"]["name"] == NOTES_PROBE]
    text: str = probe["data"]["notes"]
    return text


def driver_values(docs: tuple[Doc, ...]) -> dict[str, Any] | None:
    """The values the driver sub-chart received, None when it is not installed."""
    stub = [d for d in docs if d["metadata"]["name"] == STUB_VALUES]
    return json.loads(stub[0]["data"]["values"]) if stub else None


def one(docs: list[Doc], kind: str) -> Doc:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


def container(docs: list[Doc]) -> Doc:
    only: Doc
    (only,) = one(docs, "DaemonSet")["spec"]["template"]["spec"]["containers"]
    return only


def pod_spec(docs: list[Doc]) -> Doc:
    spec: Doc = one(docs, "DaemonSet")["spec"]["template"]["spec"]
    return spec


def serve_args(args: list[str], file_root: Path) -> dict[str, Any]:
    """The daemon's parsed `serve` arguments, defaults made explicit. --file-root must be
    an existing directory when parsed: the mount path in the pod is swapped for one."""
    swapped = [f"--file-root={file_root}" if a.startswith("--file-root=") else a for a in args]
    try:
        parsed = vars(parser().parse_args(["serve", *swapped]))
    except SystemExit as exc:  # argparse refuses: say which arguments
        raise AssertionError(f"csiprovider serve refuses {args}") from exc
    parsed["names"] = parsed["names"] or ["csiprovider"]
    parsed["write_mode"] = parsed["write_mode"] or "driver"
    if "--file-root=" in " ".join(args):
        (given,) = [a.partition("=")[2] for a in args if a.startswith("--file-root=")]
        parsed["file_root"] = given
    return parsed


def env(docs: list[Doc]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(docs)["env"]}


def by_name(items: list[Doc]) -> dict[str, Doc]:
    return {i["name"]: i for i in items}


# -- validation ---------------------------------------------------------------------------

RELABEL_NODE = {
    "sourceLabels": ["__meta_kubernetes_pod_node_name"],
    "targetLabel": "node",
    "action": "replace",
}
_DURATION = {
    "type": "string",
    "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?"
    r"(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
}
_RELABELING = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "sourceLabels": {
            "type": "array",
            "items": {"type": "string", "pattern": r"^[a-zA-Z_][a-zA-Z0-9_]*$"},
        },
        "targetLabel": {"type": "string"},
        "action": {"type": "string"},
        "regex": {"type": "string"},
        "replacement": {"type": "string"},
    },
}
_ENDPOINT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["port"],
    "properties": {
        "port": {"type": "string"},
        "path": {"type": "string"},
        "interval": _DURATION,
        "scrapeTimeout": _DURATION,
        "relabelings": {"type": "array", "items": _RELABELING},
    },
}
_SELECTOR = {
    "type": "object",
    "required": ["matchLabels"],
    "properties": {"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}},
}
_METADATA = {"type": "object", "required": ["name", "namespace"]}


def _crd(kind: str, spec: Doc) -> Doc:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": kind},
            "metadata": _METADATA,
            "spec": spec,
        },
    }


# The parts of prometheus-operator's CRDs (monitoring.coreos.com/v1) the chart uses.
CRD_SCHEMAS: dict[str, Doc] = {
    "ServiceMonitor": _crd(
        "ServiceMonitor",
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": _SELECTOR,
                "namespaceSelector": {"type": "object"},
                "endpoints": {"type": "array", "minItems": 1, "items": _ENDPOINT},
            },
        },
    ),
    "PodMonitor": _crd(
        "PodMonitor",
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "podMetricsEndpoints"],
            "properties": {
                "selector": _SELECTOR,
                "namespaceSelector": {"type": "object"},
                "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": _ENDPOINT},
            },
        },
    ),
    "PrometheusRule": _crd(
        "PrometheusRule",
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["groups"],
            "properties": {
                "groups": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["name", "rules"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": _DURATION,
                            "rules": {
                                "type": "array",
                                "minItems": 1,
                                "items": {
                                    "type": "object",
                                    "required": ["expr"],
                                    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                                    "properties": {
                                        "alert": {"type": "string"},
                                        "record": {"type": "string"},
                                        "expr": {"type": ["string", "integer"]},
                                        "for": _DURATION,
                                        "labels": {
                                            "type": "object",
                                            "additionalProperties": {"type": "string"},
                                        },
                                        "annotations": {
                                            "type": "object",
                                            "additionalProperties": {"type": "string"},
                                        },
                                    },
                                },
                            },
                        },
                    },
                }
            },
        },
    ),
}


# kubernetes-validate parses its schema files (the definitions are megabytes) on every
# call; read each once. Only while this module validates.
_schema_contents = cache(kubernetes_validate.utils.schema_contents)


@cache
def _validate(serialized: str) -> None:
    doc = json.loads(serialized)
    if doc["kind"] in CRD_SCHEMAS:
        jsonschema.validate(doc, CRD_SCHEMAS[doc["kind"]])
        return
    with mock.patch.object(kubernetes_validate.utils, "schema_contents", _schema_contents):
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


def validate(doc: Doc) -> None:
    """Kubernetes' schemas, strictly; the same object is validated once a session."""
    _validate(json.dumps(doc, sort_keys=True))
    if doc["kind"] in NAMESPACED:
        assert doc["metadata"].get("namespace"), f"{doc['kind']} without a namespace"


# -- lint and render every values set -----------------------------------------------------


def test_every_values_set_is_checked() -> None:
    assert set(VALUE_SETS) == set(CHECKS), "give each ci/*-values.yaml its checks"


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_values_set(
    helm_cli: Helm, chart: Path, render: Render, value_set: str, tmp_path: Path
) -> None:
    values = str(CI / f"{value_set}-values.yaml")
    lint = helm_cli.run(["lint", "--strict", str(chart), "--values", values])
    assert "0 chart(s) failed" in lint.stdout
    docs = render(helm_cli.major, value_set)
    for doc in docs:
        validate(doc)
    own = objects(docs)
    assert sorted(d["kind"] for d in own) == KINDS.get(value_set, BASE_KINDS)
    assert len({(d["kind"], d["metadata"]["name"]) for d in own}) == len(own)
    volumes = [v["name"] for v in pod_spec(own)["volumes"]]
    assert len(set(volumes)) == len(volumes)
    assert {m["name"] for m in container(own)["volumeMounts"]} == set(volumes)
    parsed = serve_args(container(own)["args"], tmp_path)
    assert parsed["providers_dir"] == "/var/run/secrets-store-csi-providers"
    assert parsed["log_format"] in ("json", "text")
    CHECKS[value_set](own, parsed, docs)


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_helm3_and_helm4_render_the_same(render: Render, value_set: str) -> None:
    assert render(3, value_set) == render(4, value_set)


# -- what each values set must produce ----------------------------------------------------

Check = Callable[[list[Doc], dict[str, Any], tuple[Doc, ...]], None]


def check_default(own: list[Doc], args: dict[str, Any], docs: tuple[Doc, ...]) -> None:
    assert args["names"] == ["csiprovider"] and args["write_mode"] == "driver"
    assert args["file_root"] is None and args["hmac_secret_name"] == "csiprovider-hmac-key"
    assert args["health_addr"] == ":8080" and args["vault_addr"] == ""
    # no region: the node's (NODE_NAME from the downward API, RBAC get nodes)
    assert env(own)["NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert "AWS_REGION" not in env(own)
    assert {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]} in one(own, "ClusterRole")[
        "rules"
    ]
    assert pod_spec(own)["tolerations"] == [{"operator": "Exists"}]
    assert driver_values(docs) is None
    text = notes(docs)
    assert "/var/run/secrets-store-csi-providers/csiprovider.sock" in text
    assert "not part of this release" in text


def check_provider_writes(own: list[Doc], args: dict[str, Any], docs: tuple[Doc, ...]) -> None:
    assert args["write_mode"] == "provider" and args["rotation_poll_interval"] == 120.0
    mounts = by_name(container(own)["volumeMounts"])
    assert mounts["kubelet-pods"] == {
        "name": "kubelet-pods",
        "mountPath": "/var/lib/kubelet/pods",
        "mountPropagation": "HostToContainer",
    }
    volumes = by_name(pod_spec(own)["volumes"])
    assert volumes["kubelet-pods"]["hostPath"] == {
        "path": "/var/lib/kubelet/pods",
        "type": "Directory",
    }
    assert "rotation every 2m" in notes(docs)


def _file_root(own: list[Doc], args: dict[str, Any], mount_path: str) -> Doc:
    assert args["file_root"] == mount_path
    mounts = by_name(container(own)["volumeMounts"])
    assert mounts["files"] == {"name": "files", "mountPath": mount_path, "readOnly": True}
    files: Doc = by_name(pod_spec(own)["volumes"])["files"]
    return files


def check_file_hostpath(own: list[Doc], args: dict[str, Any], docs: tuple[Doc, ...]) -> None:
    files = _file_root(own, args, "/var/lib/csiprovider/files")
    assert files["hostPath"] == {"path": "/var/lib/csiprovider/files", "type": "DirectoryOrCreate"}


def check_file_configmap(own: list[Doc], args: dict[str, Any], docs: tuple[Doc, ...]) -> None:
    files = _file_root(own, args, "/etc/csiprovider/files")
    assert files["configMap"]["name"] == "csiprovider-files"
    assert files["configMap"]["items"][0] == {"key": "username", "path": "default/db/username"}


def check_file_secret(own: list[Doc], args: dict[str, Any], docs: tuple[Doc, ...]) -> None:
    files = _file_root(own, args, "/var/lib/csiprovider/files")
    assert files["secret"] == {
        "secretName": "csiprovider-files",
        "items": [{"key": "password", "path": "default/db/password"}],
    }


def check_vault_tls(own: list[Doc], args: dict[str, Any], docs: tuple[Doc, ...]) -> None:
    assert args["names"] == ["vault"]
    assert args["vault_addr"] == "https://vault.vault.svc:8200"
    assert args["vault_mount"] == "kubernetes"
    assert args["vault_tls_server_name"] == "vault.vault.svc"
    assert not args["vault_tls_skip_verify"]
    mounts = by_name(container(own)["volumeMounts"])
    volumes = by_name(pod_spec(own)["volumes"])
    ca_dir, client_dir = (mounts[n]["mountPath"] for n in ("vault-tls-ca", "vault-tls-client"))
    assert mounts["vault-tls-ca"]["readOnly"] and mounts["vault-tls-client"]["readOnly"]
    assert args["vault_tls_ca_cert"] == f"{ca_dir}/ca.crt"
    assert args["vault_tls_client_cert"] == f"{client_dir}/tls.crt"
    assert args["vault_tls_client_key"] == f"{client_dir}/tls.key"
    assert volumes["vault-tls-ca"]["secret"] == {
        "secretName": "vault-ca",
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
    }
    client = volumes["vault-tls-client"]["secret"]
    assert client["secretName"] == "csiprovider-vault-client"
    assert client["defaultMode"] == 0o400
    assert client["items"] == [
        {"key": "tls.crt", "path": "tls.crt"},
        {"key": "tls.key", "path": "tls.key"},
    ]
    assert "provider: vault -> vault-csi-provider's parameters" in notes(docs)


def check_aws(own: list[Doc], args: dict[str, Any], docs: tuple[Doc, ...]) -> None:
    assert args["names"] == ["aws", "csiprovider"]
    assert env(own)["NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    rules = one(own, "ClusterRole")["rules"]
    assert {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get"]} in rules
    assert {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]} in rules
    assert not any("pods" in r["resources"] for r in rules)  # NODE_NAME: no pod lookups
    assert "aws.sock  provider: aws -> ASCP's parameters" in notes(docs)


def check_hmac_secret(own: list[Doc], args: dict[str, Any], docs: tuple[Doc, ...]) -> None:
    assert args["hmac_secret_name"] == "csiprovider-versions"
    assert args["hmac_secret_namespace"] == "csiprovider-keys"
    role, binding = one(own, "Role"), one(own, "RoleBinding")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "csiprovider-keys"
    assert role["rules"][0] == {
        "apiGroups": [""],
        "resources": ["secrets"],
        "resourceNames": ["csiprovider-versions"],
        "verbs": ["get"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "csiprovider", "namespace": NAMESPACE}
    ]


def check_monitoring(own: list[Doc], args: dict[str, Any], docs: tuple[Doc, ...]) -> None:
    labels = one(own, "DaemonSet")["spec"]["template"]["metadata"]["labels"]
    service, monitor = one(own, "Service"), one(own, "ServiceMonitor")
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"].items() <= labels.items()
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
    assert endpoint["interval"] == "30s" and endpoint["relabelings"] == [RELABEL_NODE]
    pod_monitor = one(own, "PodMonitor")
    assert pod_monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (endpoint,) = pod_monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["relabelings"] == [RELABEL_NODE] and endpoint["scrapeTimeout"] == "10s"
    assert container(own)["ports"][0]["name"] == "http"
    alerts = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    assert one(own, "PrometheusRule")["spec"] == {"groups": alerts["groups"]}
    dashboard = one(own, "ConfigMap")
    assert dashboard["metadata"]["namespace"] == "monitoring"
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["annotations"] == {"grafana_folder": "Secrets"}
    assert json.loads(dashboard["data"]["csiprovider.json"]) == json.loads(
        (CHART / "files" / "dashboard.json").read_text()
    )


def check_all_names(own: list[Doc], args: dict[str, Any], docs: tuple[Doc, ...]) -> None:
    assert args["names"] == ["csiprovider", "vault", "aws"]
    assert args["hmac_secret_name"] == ""  # no Secret, no Role
    assert args["cache_ttl"] == 30.0 and args["cache_size"] == 5000
    assert args["kube_qps"] == 20.0 and args["kube_burst"] == 40
    assert args["vault_namespace"] == "team-a" and args["vault_tls_skip_verify"] is True
    assert args["health_addr"] == ":9090" and args["log_level"] == "debug"
    variables = env(own)
    assert variables["AWS_REGION"] == "eu-west-1" and "NODE_NAME" not in variables
    assert variables["AWS_STS_REGIONAL_ENDPOINTS"] == "regional"
    rules = one(own, "ClusterRole")["rules"]
    assert not any("nodes" in r["resources"] for r in rules)  # the region is known
    spec = pod_spec(own)
    assert (
        spec["serviceAccountName"]
        == one(own, "ServiceAccount")["metadata"]["name"]
        == ("secrets-provider")
    )
    assert "priorityClassName" not in spec and "tolerations" not in spec
    assert spec["imagePullSecrets"] == [{"name": "registry-credentials"}]
    assert spec["affinity"]["nodeAffinity"]
    assert container(own)["image"] == "registry.example.com/csiprovider:0.1.0-rc1"
    assert container(own)["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container(own)["ports"][0]["containerPort"] == 9090
    template = one(own, "DaemonSet")["spec"]["template"]["metadata"]
    assert template["annotations"] == {"example.com/team": "platform"}
    assert template["labels"]["example.com/tier"] == "node"
    assert by_name(container(own)["volumeMounts"])["extra-ca"]["mountPath"] == "/etc/ssl/corporate"


def check_driver_install(own: list[Doc], args: dict[str, Any], docs: tuple[Doc, ...]) -> None:
    received = driver_values(docs)
    assert received is not None, "the driver sub-chart is not rendered"
    preset = yaml.safe_load((ROOT / "daemonset" / "driver" / "values.yaml").read_text())
    assert {k: received[k] for k in preset} == preset
    assert received["install"] is True
    assert "installed by this release" in notes(docs)


CHECKS: dict[str, Check] = {
    "default": check_default,
    "provider-writes": check_provider_writes,
    "file-hostpath": check_file_hostpath,
    "file-configmap": check_file_configmap,
    "file-secret": check_file_secret,
    "vault-tls": check_vault_tls,
    "aws": check_aws,
    "hmac-secret": check_hmac_secret,
    "monitoring": check_monitoring,
    "all-names": check_all_names,
    "driver-install": check_driver_install,
}


# -- the default install and the overlays are the kustomize manifests -------------------

# Values sets that are a kustomize overlay of daemonset/ in Helm form.
OVERLAYS = {
    "default": "",
    "provider-writes": "overlays/provider-writes",
    "file-hostpath": "overlays/file-root",
    "file-configmap": "overlays/file-root-demo",
    "aws": "overlays/serve-as-aws",
}


@cache
def kustomize(overlay: str) -> tuple[Doc, ...]:
    out = subprocess.run(
        [str(kubectl_binary()), "kustomize", str(ROOT / "daemonset" / overlay)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return tuple(d for d in yaml.safe_load_all(out) if d)


def _rules(doc: Doc) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True) for r in doc["rules"])


def _unhashed(volumes: list[Doc]) -> list[Doc]:
    """kustomize's configMapGenerator suffixes a content hash to the ConfigMap's name."""
    out: list[Doc] = json.loads(json.dumps(volumes))
    for volume in out:
        if "configMap" in volume:
            volume["configMap"]["name"] = re.sub(r"-[a-z0-9]{10}$", "", volume["configMap"]["name"])
    return out


@pytest.mark.parametrize("value_set", sorted(OVERLAYS))
def test_matches_kustomize(render: Render, helm_cli: Helm, value_set: str, tmp_path: Path) -> None:
    chart = objects(render(helm_cli.major, value_set))
    base = [d for d in kustomize(OVERLAYS[value_set]) if d["kind"] != "ConfigMap"]
    # Helm installs into an existing namespace (--create-namespace); the rest is the same.
    assert sorted(d["kind"] for d in base) == sorted([*BASE_KINDS, "Namespace"])
    for kind in BASE_KINDS:
        assert one(chart, kind)["metadata"]["name"] == one(base, kind)["metadata"]["name"]
        assert one(chart, kind)["metadata"].get("namespace") == one(base, kind)["metadata"].get(
            "namespace"
        )
    for kind in ("ClusterRole", "Role"):
        assert _rules(one(chart, kind)) == _rules(one(base, kind)), kind
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        assert one(chart, kind)["roleRef"] == one(base, kind)["roleRef"]
        assert one(chart, kind)["subjects"] == one(base, kind)["subjects"]
    assert one(chart, "ServiceAccount")["automountServiceAccountToken"] is True

    ours, theirs = one(chart, "DaemonSet")["spec"], one(base, "DaemonSet")["spec"]
    assert ours["updateStrategy"] == theirs["updateStrategy"]
    assert (
        ours["template"]["metadata"]["annotations"] == theirs["template"]["metadata"]["annotations"]
    )
    pod, base_pod = ours["template"]["spec"], theirs["template"]["spec"]
    for key in (
        "serviceAccountName",
        "priorityClassName",
        "nodeSelector",
        "tolerations",
        "securityContext",
    ):
        assert pod[key] == base_pod[key], key
    assert _unhashed(pod["volumes"]) == _unhashed(base_pod["volumes"])
    assert set(pod) == set(base_pod)
    (ours_c,), (theirs_c,) = pod["containers"], base_pod["containers"]
    for key in (
        "name",
        "image",
        "imagePullPolicy",
        "ports",
        "livenessProbe",
        "readinessProbe",
        "resources",
        "securityContext",
        "volumeMounts",
        "env",
    ):
        assert ours_c[key] == theirs_c[key], key
    assert set(ours_c) == set(theirs_c)
    assert serve_args(ours_c["args"], tmp_path) == serve_args(theirs_c["args"], tmp_path)


# -- the values schema --------------------------------------------------------------------

BAD_VALUES: dict[str, list[str]] = {
    "unknown-key": ["--set", "replicas=2"],
    "unknown-nested-key": ["--set", "vault.token=s.abc"],
    "write-mode": ["--set", "writeMode=sometimes"],
    "no-names": ["--set-json", "names=[]"],
    "duplicate-names": ["--set-json", 'names=["vault","vault"]'],
    "name-with-slash": ["--set-json", 'names=["../x"]'],
    "port-range": ["--set", "health.port=70000"],
    "region": ["--set", "aws.region=Europe"],
    "vault-addr": ["--set", "vault.addr=vault:8200"],
    "file-root-source": ["--set", "fileRoot.source=nfs"],
    "configmap-without-name": ["--set", "fileRoot.source=configMap"],
    "hostpath-relative": ["--set", "fileRoot.source=hostPath,fileRoot.hostPath.path=files"],
    "secret-without-name": ["--set", "fileRoot.source=secret"],
    "negative-ttl": ["--set", "cache.ttl=-1"],
    "pull-policy": ["--set", "image.pullPolicy=Sometimes"],
    "rotation-interval": ["--set", "rotationPollInterval=2 minutes"],
    "scrape-interval": ["--set", "monitoring.podMonitor.interval=often"],
    "extra-arg": ["--set-json", 'extraArgs=["kube-qps=3"]'],
    "driver-install-type": ["--set-string", f"{DRIVER}.install=yes"],
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_schema_refuses(helm_cli: Helm, chart: Path, case: str) -> None:
    result = _template(helm_cli, chart, *BAD_VALUES[case], check=False)
    assert result.returncode != 0, result.stdout[:500]
    assert "values don't meet the specifications of the schema" in result.stderr, result.stderr


def test_template_refuses_what_the_schema_cannot_say(
    helm_cli: Helm, chart: Path, tmp_path: Path
) -> None:
    result = _template(helm_cli, chart, "--set", "serviceAccount.create=false", check=False)
    assert result.returncode != 0
    assert "serviceAccount.name is required when serviceAccount.create is false" in result.stderr
    # The monitoring files are the chart's own; a chart without them says which is missing.
    bare = tmp_path / "csiprovider"
    shutil.copytree(chart, bare, ignore=shutil.ignore_patterns("files"))
    for toggle, name in [("prometheusRule", "alerts.yaml"), ("dashboard", "dashboard.json")]:
        result = _template(
            helm_cli, bare, "--set", f"monitoring.{toggle}.enabled=true", check=False
        )
        assert result.returncode != 0
        assert f"monitoring.{toggle}.enabled needs the chart's files/{name}" in result.stderr


def test_schema_accepts_the_defaults_and_every_values_set() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    validator = jsonschema.Draft7Validator(schema)
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    validator.validate(defaults)
    for value_set in VALUE_SETS:
        values = yaml.safe_load((CI / f"{value_set}-values.yaml").read_text()) or {}
        validator.validate(_merge(defaults, values))


def _merge(base: Doc, over: Doc) -> Doc:
    merged = dict(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merge(merged[key], value) if both else value
    return merged


# Kubernetes objects passed through whole: one row each in the docs' table.
WHOLE = {"livenessProbe", "readinessProbe", "resources", "updateStrategy"}


def _leaves(schema: Doc, prefix: str = "") -> set[str]:
    """Dotted paths of the schema's properties, down to the leaves."""
    out: set[str] = set()
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        if sub.get("properties") and path not in WHOLE:
            out |= _leaves(sub, f"{path}.")
        else:
            out.add(path)
    return out


def test_schema_is_strict_and_describes_every_value() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(defaults) <= set(schema["properties"])
    assert set(schema["properties"]) - set(defaults) == {"global"}

    def described(node: Doc, path: str) -> None:
        for key, sub in node.get("properties", {}).items():
            assert sub.get("description"), f"{path}{key} has no description"
            if sub.get("additionalProperties") is False:
                described(sub, f"{path}{key}.")

    described(schema, "")


# -- the driver dependency ----------------------------------------------------------------


def test_driver_dependency_is_declared() -> None:
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert meta["apiVersion"] == "v2" and meta["appVersion"] == "0.1.0"
    (dependency,) = meta["dependencies"]
    assert dependency == {
        "name": DRIVER,
        "version": "^1.6.0",
        "condition": f"{DRIVER}.install",
        "repository": "https://kubernetes-sigs.github.io/secrets-store-csi-driver/charts",
    }
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values[DRIVER]["install"] is False
    # The driver preset is the one documented for a separate driver install.
    preset = yaml.safe_load((ROOT / "daemonset" / "driver" / "values.yaml").read_text())
    assert {k: v for k, v in values[DRIVER].items() if k != "install"} == preset
    # Both default to the upstream driver chart's linux.providersDir.
    assert values["providersDir"] == "/var/run/secrets-store-csi-providers"


def test_missing_dependency_is_refused(helm_cli: Helm, tmp_path: Path) -> None:
    """Why the tests use a stand-in: without charts/secrets-store-csi-driver both helms
    refuse to render, whatever the condition says; users run `helm dependency build`."""
    bare = _copy_chart(tmp_path / "csiprovider")
    result = _template(helm_cli, bare, check=False)
    assert result.returncode != 0
    assert re.search(r"missing in charts/ directory: secrets-store-csi-driver", result.stderr)
    assert "helm dependency build" in DOC.read_text()


def test_packaged_chart_leaves_out_test_files(helm_cli: Helm, chart: Path, tmp_path: Path) -> None:
    helm_cli.run(["package", str(chart), "--destination", str(tmp_path)])
    (archive,) = tmp_path.glob("csiprovider-0.1.0.tgz")
    names = subprocess.run(
        ["tar", "tzf", str(archive)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "csiprovider/values.schema.json" in names
    assert "csiprovider/files/alerts.yaml" in names
    assert "csiprovider/files/dashboard.json" in names
    assert not [n for n in names if n.startswith("csiprovider/ci/")]


# -- docs ---------------------------------------------------------------------------------


def test_docs_cover_every_value_and_values_set() -> None:
    text = DOC.read_text()
    section = text.split("\n## Values\n", 1)[1].split("\n## ", 1)[0]
    table = set(re.findall(r"^\| `([^`]+)` \|", section, re.M))
    schema = json.loads((CHART / "values.schema.json").read_text())
    leaves = _leaves(schema) - {"global"}
    assert leaves - table == set(), "values missing from the table in docs/helm.md"
    assert table - leaves == set(), "the table in docs/helm.md names unknown values"
    for value_set in VALUE_SETS:
        assert f"ci/{value_set}-values.yaml" in text, value_set

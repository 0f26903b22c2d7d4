"""Builders shared by the tests: MountRequests shaped as the driver sends them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from csiprovider.v1alpha1 import service_pb2 as pb

POD_UID = "6f1c3f0e-1111-2222-3333-444455556666"


def pod_volume(pods_dir: Path, uid: str = POD_UID, name: str = "secrets-store-inline") -> Path:
    """A pod's CSI volume as kubelet lays it out (created): the only kind of target a
    provider-writes daemon writes into (`--kubelet-pods-dir`)."""
    path = pods_dir / uid / "volumes" / "kubernetes.io~csi" / name / "mount"
    path.mkdir(parents=True, exist_ok=True)
    return path


def objects_yaml(objects: list[dict[str, Any]]) -> str:
    return yaml.safe_dump(objects, sort_keys=False)


def attributes(
    objects: list[dict[str, Any]] | str | None = None,
    *,
    namespace: str = "default",
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    attrs = {
        "csi.storage.k8s.io/pod.name": "app-0",
        "csi.storage.k8s.io/pod.namespace": namespace,
        "csi.storage.k8s.io/pod.uid": POD_UID,
        "csi.storage.k8s.io/serviceAccount.name": "app",
        "csi.storage.k8s.io/ephemeral": "true",
        "secretProviderClass": "app-secrets",
    }
    if objects is not None:
        attrs["objects"] = objects if isinstance(objects, str) else objects_yaml(objects)
    attrs.update(extra or {})
    return attrs


def mount_request(
    objects: list[dict[str, Any]] | str | None = None,
    *,
    target_path: str = "/tmp/unused-target",
    permission: str = "420",
    namespace: str = "default",
    raw_attributes: str | None = None,
    extra: Mapping[str, str] | None = None,
    secrets: str = "null",
) -> pb.MountRequest:
    """As the driver sends it; `secrets` is `null` as for a volume without
    nodePublishSecretRef (most of them)."""
    return pb.MountRequest(
        attributes=raw_attributes
        if raw_attributes is not None
        else json.dumps(attributes(objects, namespace=namespace, extra=extra)),
        secrets=secrets,
        target_path=target_path,
        permission=permission,
    )

"""The `aws` dialect: ASCP's SecretProviderClass parameters, unchanged.

Parameters: `objects`, `region` (else the daemon's AWS_REGION, else the node's
`topology.kubernetes.io/region` label), `failoverRegion`, `pathTranslation`,
`usePodIdentity`, `preferredAddressType`. Files, ObjectVersion ids (file names) and
versions (VersionId / parameter version) are ASCP's.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from csiprovider.compat.go.strconv import parse_bool
from csiprovider.errors import InvalidArgument, MountError
from csiprovider.limits import quote
from csiprovider.model import Encoding, Extraction, MountObject, Wording, canonical_json
from csiprovider.paths import PayloadError, validate_path
from csiprovider.request import MountParams
from csiprovider.stores.aws import objects as spec
from csiprovider.stores.aws.source import AwsIdentity, ParameterBatch, SecretSource

IRSA_AUDIENCE = "sts.amazonaws.com"
POD_IDENTITY_AUDIENCE = "pods.eks.amazonaws.com"
SSM_BATCH = 10

RegionLookup = Callable[[str, str], str]  # (namespace, pod) -> region of the pod's node


class AwsDialect:
    def __init__(self, node_region: RegionLookup | None = None) -> None:
        self._node_region = node_region

    def __call__(self, params: MountParams) -> list[MountObject]:
        p = params.parameters
        if not params.tokens:
            raise InvalidArgument(
                "CSI token error: serviceAccount.tokens not provided - ensure tokenRequests is "
                "configured in CSIDriver - ensure tokenRequests is configured in CSIDriver spec"
            )
        regions = [self._region(params)]
        failover = p.get("failoverRegion", "")
        if failover:
            if failover == regions[0]:
                raise InvalidArgument(
                    f"{regions[0]}: failover region cannot be the same as the primary region"
                )
            regions.append(failover)
        for region in regions:
            check_region(region)
        try:
            pod_identity = parse_bool(p["usePodIdentity"]) if p.get("usePodIdentity") else False
        except ValueError as exc:
            raise InvalidArgument(f"failed to parse usePodIdentity value, error: {exc}") from None
        identity = _identity(params, pod_identity)
        try:
            translate = spec.translation(p.get("pathTranslation", ""))
            descriptors = spec.load(p.get("objects", ""), regions, translate)
        except spec.ObjectsError as exc:
            raise InvalidArgument(str(exc)) from None
        return build_objects(descriptors, identity, tuple(regions), translate, params.default_mode)

    def _region(self, params: MountParams) -> str:
        region = params.parameters.get("region", "") or os.environ.get("AWS_REGION", "")
        if region:
            return region
        if self._node_region is None:
            raise InvalidArgument(
                "failed to retrieve region from node. error: no region in the "
                "SecretProviderClass, no AWS_REGION for the daemon and no Kubernetes API "
                "access; set parameters.region"
            )
        try:
            return self._node_region(params.pod.namespace, params.pod.name)
        except MountError as exc:
            raise type(exc)(exc.message) from None


_REGION = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?")


def check_region(region: str, where: str = "") -> str:
    """A region name as botocore accepts it (it refuses others with an exception)."""
    if not _REGION.fullmatch(region):
        raise InvalidArgument(
            f"{where}invalid AWS region {quote(region)}: use a region name such as eu-west-1"
        )
    return region


def native_identity(
    params: MountParams, region_lookup: RegionLookup | None = None
) -> tuple[AwsIdentity, str]:
    """Identity and default region for native-dialect AWS objects, from the same SPC
    parameters the aws dialect reads (`region`, `usePodIdentity`, `preferredAddressType`)."""
    return pod_identity(params), AwsDialect(region_lookup)._region(params)


def pod_identity(params: MountParams) -> AwsIdentity:
    """The pod's AWS identity (IRSA, or Pod Identity with `usePodIdentity`), region aside:
    a SOPS KMS entry takes its region from the key ARN."""
    p = params.parameters
    try:
        use_agent = parse_bool(p["usePodIdentity"]) if p.get("usePodIdentity") else False
    except ValueError as exc:
        raise InvalidArgument(f"failed to parse usePodIdentity value, error: {exc}") from None
    if not params.tokens:
        raise InvalidArgument(
            "no service account tokens in the Mount request: AWS objects need the CSIDriver's "
            "tokenRequests to include sts.amazonaws.com (IRSA) or pods.eks.amazonaws.com"
        )
    return _identity(params, use_agent)


def _identity(params: MountParams, pod_identity: bool) -> AwsIdentity:
    audience = POD_IDENTITY_AUDIENCE if pod_identity else IRSA_AUDIENCE
    what = "Pod Identity" if pod_identity else "IRSA"
    token = params.tokens.get(audience)
    if token is None:
        raise InvalidArgument(
            f'{what} token extraction failed: token for audience "{audience}" not found - '
            "ensure tokenRequests includes this audience in CSIDriver"
        )
    if not token.token:
        raise InvalidArgument(
            f'{what} token extraction failed: token for audience "{audience}" is empty'
        )
    address = params.parameters.get("preferredAddressType", "").lower()
    return AwsIdentity(
        mode="pod-identity" if pod_identity else "irsa",
        namespace=params.pod.namespace,
        service_account=params.pod.service_account,
        pod_uid=params.pod.uid,
        pod_name=params.pod.name,
        address_type=address if address in ("ipv4", "ipv6") else "auto",
        token=token.token,
    )


def build_objects(
    descriptors: list[spec.Descriptor],
    identity: AwsIdentity,
    regions: tuple[str, ...],
    translate: str,
    default_mode: int,
) -> list[MountObject]:
    out: list[MountObject] = []
    batches = _ssm_batches(descriptors, identity, regions)
    for index, d in enumerate(descriptors):
        label = f"objects[{index}] (objectName {d.object_name!r})"
        if d.secret_type == "secretsmanager":
            source: Any = SecretSource(
                identity=identity,
                regions=regions,
                names=(d.object_name, d.failover.object_name or d.object_name)[: len(regions)],
                version_id=d.object_version,
                stages=(
                    d.object_version_label,
                    d.failover.object_version_label or d.object_version_label,
                )[: len(regions)],
            )
            slot = 0
        else:
            source, slot = batches[index]
        mode = int(d.file_permission, 8) if d.file_permission else default_mode
        out.append(
            _object(
                index,
                label,
                d.file_name(translate),
                mode,
                source,
                d.object_name,
                slot,
                "",
                d.encoding,
            )
        )
        for entry in d.jmes_path:
            alias = (
                entry.object_alias.replace("/", translate)
                if translate
                else entry.object_alias.lstrip("/")
            )
            child_mode = int(entry.file_permission, 8) if entry.file_permission else mode
            out.append(
                _object(
                    index,
                    f"{label} jmesPath {entry.path!r}",
                    alias,
                    child_mode,
                    source,
                    d.object_name,
                    slot,
                    entry.path,
                    entry.encoding,
                )
            )
    return out


def _object(
    index: int,
    label: str,
    file_name: str,
    mode: int,
    source: Any,
    name: str,
    slot: int,
    jmes_path: str,
    decode: str,
) -> MountObject:
    try:
        validate_path(file_name)
    except PayloadError as exc:
        raise InvalidArgument(f"{label}: {file_name!r} cannot be a file name ({exc})") from None
    if decode not in ("", "base64"):
        raise InvalidArgument(f"{label}: encoding must be base64 when set")
    spec: dict[str, Any] = {
        "file": file_name,
        "mode": mode,
        "name": name,
        "selector_index": slot,
        "decode": decode,
    }
    if jmes_path:
        spec["jmes_path"] = jmes_path
    return MountObject(
        index=index,
        backend="aws",
        object_name=file_name,
        file_name=file_name,
        mode=mode,
        encoding=Encoding.BASE64 if decode else Encoding.UTF8,
        source=source,
        spec_json=canonical_json(spec),
        extraction=Extraction(jmes_path=jmes_path, wording=Wording.AWS, subject=name),
        part=slot,
        store_version=True,
    )


def _ssm_batches(
    descriptors: list[spec.Descriptor], identity: AwsIdentity, regions: tuple[str, ...]
) -> dict[int, tuple[ParameterBatch, int]]:
    """Batches of at most 10, never the same name twice in one batch (ASCP maps both
    selectors of one parameter to one file)."""
    pending = [(i, d) for i, d in enumerate(descriptors) if d.secret_type == "ssmparameter"]
    result: dict[int, tuple[ParameterBatch, int]] = {}
    while pending:
        chosen: list[tuple[int, spec.Descriptor]] = []
        names: set[str] = set()
        rest = []
        for item in pending:
            if len(chosen) < SSM_BATCH and item[1].object_name not in names:
                chosen.append(item)
                names.add(item[1].object_name)
            else:
                rest.append(item)
        per_region = tuple(
            tuple(_selector(d, failover=r > 0) for _, d in chosen) for r in range(len(regions))
        )
        batch = ParameterBatch(identity=identity, regions=regions, selectors=per_region)
        for slot, (i, _) in enumerate(chosen):
            result[i] = (batch, slot)
        pending = rest
    return result


def _selector(d: spec.Descriptor, failover: bool) -> str:
    name = d.failover.object_name if failover and d.failover.object_name else d.object_name
    version = d.object_version
    label = (
        d.failover.object_version_label
        if failover and d.failover.object_version_label
        else d.object_version_label
    )
    if version:
        return f"{name}:{version}"
    if label:
        return f"{name}:{label}"
    return name

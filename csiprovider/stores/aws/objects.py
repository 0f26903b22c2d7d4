"""ASCP's `objects` YAML, decoded and validated as ASCP does.

ASCP reads it with sigs.k8s.io/yaml (compat.go.sigs_yaml): YAML 1.1 (so `0600` is the
integer 384 and `yes` is true), converted to JSON and decoded into Go structs, which means
keys match field names case-insensitively, scalars for string fields become their string
form, and unknown keys are ignored. Validation messages follow
provider/secret_descriptor.go.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from csiprovider import limits
from csiprovider.compat.go import sigs_yaml

_BAD_PATH = re.compile(r"(/\.\./)|(^\.\./)|(/\.\.$)")
_PERMISSION = re.compile(r"^[0-7]{4}$")
TYPES = {"secretsmanager": "secretsmanager", "ssmparameter": "ssmparameter", "ssm": "ssmparameter"}


class ObjectsError(ValueError):
    """A problem with `objects`, worded as ASCP words it."""


@dataclass(frozen=True)
class JmesEntry:
    path: str
    object_alias: str
    file_permission: str
    encoding: str = ""  # ours: "base64" decodes the selected value


@dataclass(frozen=True)
class Failover:
    object_name: str = ""
    object_version: str = ""
    object_version_label: str = ""


@dataclass(frozen=True)
class Descriptor:
    object_name: str = ""
    object_alias: str = ""
    object_version: str = ""
    object_version_label: str = ""
    object_type: str = ""
    file_permission: str = ""
    jmes_path: tuple[JmesEntry, ...] = ()
    failover: Failover = field(default_factory=Failover)
    encoding: str = ""  # ours

    @property
    def secret_type(self) -> str:
        """secretsmanager or ssmparameter; from objectType, else from the ARN."""
        kind = self.object_type or self.object_name.split(":")[2]
        return TYPES.get(kind, kind)

    def file_name(self, translate: str) -> str:
        name = self.object_alias or self.object_name
        return name.replace("/", translate) if translate else name.lstrip("/")


def translation(raw: str) -> str:
    """`pathTranslation`: '' → '_', 'false' (any case) → off, else exactly one byte."""
    if not raw:
        return "_"
    if raw.lower() == "false":
        return ""
    if len(raw.encode()) != 1:
        raise ObjectsError("pathTranslation must be either 'False' or a single character string")
    return raw


def decode(text: str) -> list[Descriptor | None]:
    """ASCP's `yaml.Unmarshal` into []*SecretDescriptor (None for a null entry), no checks."""
    limits.check_yaml(text, "objects")  # before libyaml's recursive composer
    try:
        values = sigs_yaml.unmarshal(text, _DESCRIPTORS)
    except sigs_yaml.DecodeError as exc:
        raise ObjectsError(f"Failed to load SecretProviderClass: {exc}") from None
    return [None if value is None else _descriptor(value) for value in values or ()]


def load(text: str, regions: list[str], translate: str) -> list[Descriptor]:
    """Decode and validate; the first problem found is the error."""
    descriptors = []
    for d in decode(text):
        if d is None:
            raise ObjectsError("Empty descriptor entry in SecretProviderClass")
        descriptors.append(d)
    for d in descriptors:
        validate(d, regions, translate)
    check_duplicates(descriptors)
    return descriptors


def validate(d: Descriptor, regions: list[str], translate: str) -> None:
    if not d.object_name:
        raise ObjectsError("Object name must be specified")
    _validate_name(d.object_name, d.object_type, regions[0])
    if d.secret_type == "ssmparameter" and d.object_version and d.object_version_label:
        raise ObjectsError(
            "ssm parameters can not specify both objectVersion and "
            f"objectVersionLabel: {d.object_name}"
        )
    if _BAD_PATH.search(d.file_name(translate)):
        raise ObjectsError(f"path can not contain ../: {d.object_name}")
    _validate_permission(d.file_permission)
    for entry in d.jmes_path:
        if not entry.path:
            raise ObjectsError("Path must be specified for JMES object")
        if not entry.object_alias:
            raise ObjectsError("Object alias must be specified for JMES object")
        _validate_permission(entry.file_permission)
    if d.failover.object_name:
        if not d.object_alias:
            raise ObjectsError(
                f"object alias must be specified for objects with failover entries: {d.object_name}"
            )
        if len(regions) < 2:
            raise ObjectsError(
                f"failover object allowed only when failover region is defined: {d.object_name}"
            )
        _validate_name(d.failover.object_name, d.object_type, regions[1])
        if (
            d.secret_type == "ssmparameter"
            and d.failover.object_version
            and d.failover.object_version_label
        ):
            raise ObjectsError(
                "ssm parameters can not specify both objectVersion and "
                f"objectVersionLabel: {d.object_name}"
            )
        if d.failover.object_version != d.object_version:
            raise ObjectsError(
                f"object versions must match between primary and failover regions: {d.object_name}"
            )


def check_duplicates(descriptors: list[Descriptor]) -> None:
    seen: dict[str, Descriptor] = {}
    aliases: set[str] = set()
    for d in descriptors:
        found = seen.get(d.object_name)
        if found is not None:
            prefix = f"found descriptor with duplicate object name {d.object_name}"
            a, fa = bool(d.object_alias), bool(found.object_alias)
            lab, flab = bool(d.object_version_label), bool(found.object_version_label)
            if a and fa and not lab and not flab and d.object_alias == found.object_alias:
                raise ObjectsError(
                    f"{prefix}, duplicate object alias {d.object_alias}, and no version label"
                )
            if (
                not a
                and not fa
                and lab
                and flab
                and d.object_version_label == found.object_version_label
            ):
                raise ObjectsError(
                    f"{prefix}, no object alias, and duplicate version label "
                    f"{d.object_version_label}"
                )
            if (
                a
                and fa
                and lab
                and flab
                and d.object_alias == found.object_alias
                and d.object_version_label == found.object_version_label
            ):
                raise ObjectsError(
                    f"{prefix}, duplicate object alias {d.object_alias}, and "
                    f"duplicate version label {d.object_version_label}"
                )
            if not a and not fa and not lab and not flab:
                raise ObjectsError(f"{prefix}, no object alias, and no version label")
        seen[d.object_name] = d
        if d.object_alias in aliases:
            raise ObjectsError(f"found duplicate object alias {d.object_alias}")
        if d.object_alias:
            aliases.add(d.object_alias)
        for entry in d.jmes_path:
            if entry.object_alias in aliases:
                raise ObjectsError(
                    "Name already in use for objectAlias: found duplicate object "
                    f"alias {entry.object_alias} in JMES path entry {entry.path}"
                )
            aliases.add(entry.object_alias)


def parse_arn(name: str) -> tuple[str, str] | None:
    """(service, region) of an ARN as aws-sdk-go's arn.Parse reads it; None if invalid."""
    parts = name.split(":", 5)
    if len(parts) < 6 or parts[0] != "arn":
        return None
    return parts[2], parts[3]


def _validate_name(name: str, object_type: str, region: str) -> None:
    service = ""
    is_arn = name.startswith("arn:")
    if is_arn:
        parsed = parse_arn(name)
        if parsed is None:
            raise ObjectsError(f"Invalid ARN format in object name: {name}")
        service, arn_region = parsed
        if arn_region != region:
            raise ObjectsError(f"ARN region must match region {region}: {name}")
    if not object_type and not is_arn:
        raise ObjectsError(f"Must use objectType when a full ARN is not specified: {name}")
    if not object_type and service not in TYPES:
        raise ObjectsError(f"Invalid service in ARN: {service}")
    if object_type and (object_type not in TYPES or object_type == "ssm"):
        raise ObjectsError(f"Invalid objectType: {object_type}")
    if object_type and is_arn and TYPES[object_type] != TYPES.get(service):
        raise ObjectsError(f"objectType does not match ARN: {name}")


def _validate_permission(permission: str) -> None:
    if permission and not _PERMISSION.match(permission):
        raise ObjectsError(f"Invalid File Permission: {permission}")


# ---------------------------------------------------------------- the Go structs

# ASCP's provider.SecretDescriptor and its parts (json tags, Go types), plus our own
# `encoding` key in SecretDescriptor and JMESPathEntry.
_JMES = sigs_yaml.struct(
    "provider.JMESPathEntry",
    [
        ("path", sigs_yaml.STRING),
        ("objectAlias", sigs_yaml.STRING),
        ("filePermission", sigs_yaml.STRING),
        ("encoding", sigs_yaml.STRING),
    ],
)
_FAILOVER = sigs_yaml.struct(
    "provider.FailoverObjectEntry",
    [
        ("objectName", sigs_yaml.STRING),
        ("objectVersion", sigs_yaml.STRING),
        ("objectVersionLabel", sigs_yaml.STRING),
    ],
)
_DESCRIPTOR = sigs_yaml.struct(
    "provider.SecretDescriptor",
    [
        ("objectName", sigs_yaml.STRING),
        ("objectAlias", sigs_yaml.STRING),
        ("objectVersion", sigs_yaml.STRING),
        ("objectVersionLabel", sigs_yaml.STRING),
        ("objectType", sigs_yaml.STRING),
        ("filePermission", sigs_yaml.STRING),
        ("jmesPath", sigs_yaml.slice_of(_JMES)),
        ("failoverObject", _FAILOVER),
        ("encoding", sigs_yaml.STRING),
    ],
)
_DESCRIPTORS = sigs_yaml.slice_of(sigs_yaml.pointer_to(_DESCRIPTOR))


def _descriptor(value: Mapping[str, Any]) -> Descriptor:
    jmes = tuple(
        JmesEntry(
            path=j["path"],
            object_alias=j["objectAlias"],
            file_permission=j["filePermission"],
            encoding=j["encoding"],
        )
        for j in value["jmesPath"] or ()
    )
    f = value["failoverObject"]
    return Descriptor(
        object_name=value["objectName"],
        object_alias=value["objectAlias"],
        object_version=value["objectVersion"],
        object_version_label=value["objectVersionLabel"],
        object_type=value["objectType"],
        file_permission=value["filePermission"],
        jmes_path=jmes,
        encoding=value["encoding"],
        failover=Failover(
            object_name=f["objectName"],
            object_version=f["objectVersion"],
            object_version_label=f["objectVersionLabel"],
        ),
    )

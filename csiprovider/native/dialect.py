"""The native dialect: `spec.parameters.objects` is a YAML list of objects, each naming
its backend.

    objects: |
      - objectName: db-password
        backend: file
        path: db/password
        objectAlias: password
        filePermission: "0640"
        encoding: base64
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import difflib
import functools
import hashlib
import json
import posixpath
import re
from collections.abc import Callable, Mapping
from typing import Any, cast

import yaml

from csiprovider import limits
from csiprovider.errors import InvalidArgument
from csiprovider.model import (
    Encoding,
    Extraction,
    MountObject,
    SpcObject,
    TemplateObject,
    canonical_json,
)
from csiprovider.paths import PayloadError, validate_path
from csiprovider.request import POD_NAMESPACE, MountParams
from csiprovider.stores.file.source import FileSource

# libyaml's loader is ~10x faster than the pure-Python one; the SPC is parsed on every Mount.
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

COMMON_FIELDS = frozenset(
    {
        "objectName",
        "backend",
        "objectAlias",
        "filePermission",
        "encoding",
        "optional",
        "jmesPath",
        "expand",
        "render",
    }
)
TEMPLATE_FIELDS = frozenset({"objectName", "template", "objectAlias", "filePermission", "optional"})
VAULT_SETTINGS = frozenset(
    {
        "vaultAddress",
        "roleName",
        "vaultNamespace",
        "vaultKubernetesMountPath",
        "vaultAuthMountPath",
        "vaultCACertPath",
        "vaultCADirectory",
        "vaultTLSServerName",
        "vaultTLSClientCertPath",
        "vaultTLSClientKeyPath",
        "vaultSkipTLSVerify",
        "audience",
    }
)
VAULT_FIELDS = (
    COMMON_FIELDS
    | VAULT_SETTINGS
    | {"secretPath", "secretKey", "method", "secretArgs", "prefix", "kvVersion", "maxItems"}
)
FILE_FIELDS = COMMON_FIELDS | {"path", "prefix", "maxItems"}
TRANSIT_FIELDS = (
    (COMMON_FIELDS - {"encoding", "jmesPath", "expand"})
    | VAULT_SETTINGS
    | {"ciphertext", "key", "mount", "context"}
)
_TRANSIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
AWS_FIELDS = {
    "aws-kms": COMMON_FIELDS | {"ciphertext", "encryptionContext", "region"},
    "aws-secretsmanager": COMMON_FIELDS | {"secretId", "versionStage", "versionId", "region"},
    "aws-ssm": COMMON_FIELDS | {"parameter", "region", "pathPrefix", "maxItems"},
}
SOPS_FIELDS = COMMON_FIELDS | VAULT_SETTINGS | {"document", "path", "format"}
SOPS_EXTENSIONS = {
    ".yaml": "yaml",
    ".yml": "yaml",
    ".json": "json",
    ".env": "dotenv",
    ".ini": "ini",
}  # any other: binary, as sops decides by extension
_OCTAL = re.compile(r"0?o?[0-7]{1,4}")


def parse(params: MountParams) -> list[SpcObject]:
    """Parse and validate every object; the first problem found is the error."""
    return NativeDialect()(params)


class NativeDialect:
    """The native dialect with the daemon's Vault defaults (flags and VAULT_* env) and
    its AWS region lookup (the node's region, for objects and SPCs that set none)."""

    def __init__(
        self, vault_defaults: Any = None, region_lookup: Callable[[str, str], str] | None = None
    ) -> None:
        aws = functools.partial(_aws_object, region_lookup=region_lookup)
        self._builders = {
            **_BUILDERS,
            "aws-kms": aws,
            "aws-secretsmanager": aws,
            "aws-ssm": aws,
            "vault": functools.partial(_vault_object, defaults=vault_defaults),
            "vault-transit": functools.partial(_transit_object, defaults=vault_defaults),
            "sops": functools.partial(_sops_object, defaults=vault_defaults),
        }

    def __call__(self, params: MountParams) -> list[SpcObject]:
        items = load_objects(params.parameters.get("objects"))
        objects = [_parse_object(i, item, params, self._builders) for i, item in enumerate(items)]
        check_unique(objects)
        from csiprovider.native import schema  # jsonschema loads with the first native SPC

        problem = schema.first_error(items)  # what the field checks above let through
        if problem is not None:
            raise InvalidArgument(f"{problem}; see the native dialect's JSON Schema")
        return objects


def load_objects(raw: str | None) -> list[Any]:
    """Load the `objects` parameter as a non-empty YAML list."""
    if raw is None or not raw.strip():
        raise InvalidArgument(
            "missing parameter objects: spec.parameters.objects must be a YAML list with at "
            "least one object, e.g. '- objectName: db-password\\n  backend: file'"
        )
    limits.check_yaml(raw, "parameter objects", unique_keys=True)
    try:
        items = yaml.load(raw, Loader=_LOADER)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise InvalidArgument(
            f"failed to parse parameter objects as YAML{where}: {problem}; "
            "spec.parameters.objects must be a YAML list of objects"
        ) from None
    if not isinstance(items, list) or not items:
        raise InvalidArgument(
            "invalid parameter objects: expected a non-empty YAML list of objects, got "
            f"{_kind(items)}"
        )
    return items


def check_unique(objects: list[SpcObject]) -> None:
    """Object names are ObjectVersion ids and file names are paths: both must be unique."""
    for attr, what, fix in (
        ("object_name", "objectName", "give each object its own objectName"),
        ("file_name", "file name", "set objectAlias on one of them"),
    ):
        seen: dict[str, SpcObject] = {}
        for obj in objects:
            key = getattr(obj, attr)
            if key in seen:
                raise InvalidArgument(
                    f"{obj.label}: duplicate {what} {key!r}, also used by {seen[key].label}; {fix}"
                )
            seen[key] = obj


def _parse_object(
    index: int, item: Any, params: MountParams, builders: Mapping[str, Any]
) -> SpcObject:
    label = f"objects[{index}]"
    if not isinstance(item, dict):
        raise InvalidArgument(f"{label}: expected a mapping with objectName, got {_kind(item)}")
    name = _string(item, "objectName", label, required=True)
    label = f"{label} (objectName {name!r})"
    if "template" in item and "backend" not in item:
        return _template_object(index, label, name, item, params)
    backend = _string(item, "backend", label, required=True)
    builder = builders.get(backend)
    if builder is None:
        raise InvalidArgument(
            f"{label}: unknown backend {backend!r}{_suggest(backend, builders)}; supported "
            f"backends: {', '.join(sorted(builders))}"
        )
    result: SpcObject = builder(index, label, name, item, params)
    return result


def _file_object(
    index: int, label: str, name: str, item: Mapping[str, Any], params: MountParams
) -> MountObject:
    _check_fields(item, FILE_FIELDS, label)
    prefix = _string(item, "prefix", label, required=False)
    if prefix and "path" in item:
        raise InvalidArgument(f"{label}: set path or prefix, not both")
    path = prefix.rstrip("/") or _string(item, "path", label, required=False) or name
    try:
        validate_path(path)
    except PayloadError as exc:
        raise InvalidArgument(
            f"{label}: invalid path {path!r} ({_why(exc)}); path must be relative to the "
            "namespace directory of the file backend, without '..'"
        ) from None
    namespace = params.pod.namespace
    if not namespace:
        raise InvalidArgument(
            f"{label}: the file backend needs the pod namespace but {POD_NAMESPACE} is "
            "missing; set podInfoOnMount: true on the CSIDriver"
        )
    source = FileSource(
        namespace=namespace, path=path, listing=bool(prefix), max_items=_max_items(item, label)
    )
    return _common(index, label, name, item, params, source, {"path": path, "prefix": bool(prefix)})


def _max_items(item: Mapping[str, Any], label: str) -> int:
    value = item.get("maxItems", 100)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10000:
        raise InvalidArgument(f"{label}: maxItems must be an integer from 1 to 10000")
    return value


def _aws_object(
    index: int,
    label: str,
    name: str,
    item: Mapping[str, Any],
    params: MountParams,
    region_lookup: Callable[[str, str], str] | None = None,
) -> MountObject:
    """aws-kms, aws-secretsmanager and aws-ssm: the pod's own AWS identity (IRSA or Pod
    Identity, from the SPC's `usePodIdentity`), region from the object or the SPC."""
    from csiprovider.stores.aws.dialect import check_region, native_identity
    from csiprovider.stores.aws.source import KmsSource, ParameterBatch, ParameterPath, SecretSource

    backend = item["backend"]
    _check_fields(item, AWS_FIELDS[backend], label)
    identity, default_region = native_identity(params, region_lookup)
    region = check_region(
        _string(item, "region", label, required=False) or default_region, f"{label}: "
    )
    spec: dict[str, Any] = {"region": region}
    source: Any
    if backend == "aws-kms":
        text = _string(item, "ciphertext", label, required=True)
        try:
            blob = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidArgument(
                f"{label}: ciphertext is not base64; paste what `csiprovider encrypt` printed"
            ) from None
        context = item.get("encryptionContext") or {}
        if not isinstance(context, dict):
            raise InvalidArgument(f"{label}: encryptionContext must be a map of strings")
        pairs = tuple(sorted((str(k), str(v)) for k, v in context.items()))
        source = KmsSource(identity=identity, region=region, ciphertext=blob, context=pairs)
        spec.update(ciphertext=text, context=pairs)
    elif backend == "aws-secretsmanager":
        secret_id = _string(item, "secretId", label, required=False) or name
        stage = _string(item, "versionStage", label, required=False)
        version = _string(item, "versionId", label, required=False)
        source = SecretSource(
            identity=identity,
            regions=(region,),
            names=(secret_id,),
            version_id=version,
            stages=(stage,),
        )
        spec.update(secretId=secret_id, stage=stage, version=version)
    elif item.get("pathPrefix"):
        path = _string(item, "pathPrefix", label, required=True)
        source = ParameterPath(
            identity=identity, region=region, path=path, max_items=_max_items(item, label)
        )
        spec.update(pathPrefix=path)
    else:
        parameter = _string(item, "parameter", label, required=False) or name
        source = ParameterBatch(identity=identity, regions=(region,), selectors=((parameter,),))
        spec.update(parameter=parameter)
    _max_items(item, label)
    obj = _common(index, label, name, item, params, source, spec)
    subject = spec.get("secretId") or spec.get("parameter") or name
    return dataclasses.replace(obj, extraction=dataclasses.replace(obj.extraction, subject=subject))


def _template_object(
    index: int, label: str, name: str, item: Mapping[str, Any], params: MountParams
) -> TemplateObject:
    """A file rendered from other objects of this SPC (see csiprovider.native.templates)."""
    _check_fields(item, TEMPLATE_FIELDS, label)
    source = _string(item, "template", label, required=True)
    from csiprovider.native import templates  # jinja2 loads with the first template

    templates.check(source, label)
    obj = _common(
        index,
        label,
        name,
        {**item, "backend": "template"},
        params,
        ("template", index),
        {"template": source},
    )
    return TemplateObject(
        index=index,
        object_name=name,
        file_name=obj.file_name,
        mode=obj.mode,
        template=source,
        spec_json=obj.spec_json,
        optional=obj.optional,
    )


def _vault_object(
    index: int,
    label: str,
    name: str,
    item: Mapping[str, Any],
    params: MountParams,
    defaults: Any = None,
) -> MountObject:
    """A Vault object: SPC-level Vault parameters, overridden per object (two roles in one
    SPC), parsed by the vault dialect so identity and auth rules are the same."""
    from csiprovider.stores.vault.dialect import VaultDialect
    from csiprovider.stores.vault.source import KvListing, VaultSource

    _check_fields(item, VAULT_FIELDS, label)
    settings = {k: v for k, v in params.parameters.items() if k in VAULT_SETTINGS}
    for key in VAULT_SETTINGS & set(item):
        settings[key] = str(item[key])
    if "vaultAuthMountPath" in item:
        settings.pop("vaultKubernetesMountPath", None)
    prefix = _string(item, "prefix", label, required=False)
    kv_version = item.get("kvVersion", 2)
    if kv_version not in (1, 2):
        raise InvalidArgument(f"{label}: kvVersion must be 1 or 2")
    listing = _kv_paths(prefix, kv_version, label) if prefix else None
    path = listing[0] if listing else item.get("secretPath", "")
    entry: dict[str, Any] = {"objectName": name, "secretPath": path}
    for key in ("secretKey", "method", "secretArgs"):
        if key in item:
            entry[key] = item[key]
    if "secretKey" not in item:
        entry["secretFormat"] = "data"  # native: the secret's data, not the envelope
    others = {k: v for k, v in params.parameters.items() if k not in VAULT_SETTINGS}
    sub = dataclasses.replace(
        params, parameters={**others, **settings, "objects": json.dumps([entry])}
    )
    try:
        (parsed,) = VaultDialect(defaults)(sub)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{label}: {exc.message}") from None
    source = parsed.source
    if listing:
        source = dataclasses.replace(
            cast(VaultSource, source),
            method="LIST",
            listing=KvListing(read_base=listing[1], max_items=_max_items(item, label)),
        )
    spec = {
        "vault": json.loads(parsed.spec_json),
        "settings": sorted(settings.items()),
        "prefix": prefix,
    }
    obj = _common(index, label, name, item, params, source, spec)
    return dataclasses.replace(
        obj,
        extraction=dataclasses.replace(
            obj.extraction, key=parsed.extraction.key, subject=parsed.extraction.subject
        ),
    )


def _transit_object(
    index: int,
    label: str,
    name: str,
    item: Mapping[str, Any],
    params: MountParams,
    defaults: Any = None,
) -> MountObject:
    """A `vault:v1:...` ciphertext committed in the SPC, decrypted by Vault's transit
    engine (`<mount>/decrypt/<key>`) with the pod's own Vault login: the same Vault
    settings, identity and sharing rules as `vault` objects. Vault answers the plaintext
    base64-encoded; the file is the decoded bytes."""
    _check_fields(item, TRANSIT_FIELDS, label)
    ciphertext = _string(item, "ciphertext", label, required=True)
    if not ciphertext.startswith("vault:v"):
        raise InvalidArgument(
            f"{label}: ciphertext must be a transit ciphertext "
            "(vault:v1:...); paste what `csiprovider encrypt "
            "--vault-transit KEY` printed"
        )
    key = _string(item, "key", label, required=True)
    mount = _string(item, "mount", label, required=False) or "transit"
    for field, value in (("key", key), ("mount", mount.strip("/"))):
        if not all(_TRANSIT_NAME.fullmatch(part) for part in value.split("/")):
            raise InvalidArgument(f"{label}: {field} {value[:64]!r} is not a Vault name")
    args: dict[str, str] = {"ciphertext": ciphertext}
    context = _string(item, "context", label, required=False)
    if context:
        args["context"] = base64.b64encode(context.encode()).decode()
    vault_item = {
        k: v for k, v in item.items() if k not in ("ciphertext", "key", "mount", "context")
    }
    vault_item.update(
        backend="vault",
        secretPath=f"{mount.strip('/')}/decrypt/{key}",
        method="POST",
        secretArgs=args,
        secretKey="plaintext",
    )
    obj = _vault_object(index, label, name, vault_item, params, defaults)
    return dataclasses.replace(obj, backend="vault", encoding=Encoding.BASE64)


def _sops_object(
    index: int,
    label: str,
    name: str,
    item: Mapping[str, Any],
    params: MountParams,
    defaults: Any = None,
) -> MountObject:
    """A SOPS-encrypted document, committed in the SPC (`document`) or a file of the
    pod's namespace directory in the file backend (`path`), decrypted with the pod's own
    identities: its age key (nodePublishSecretRef `sops-age-key`), its Vault login (the
    same Vault settings as `vault` objects) and its IRSA / Pod Identity. Which of them is
    used is the document's to say (its master keys); one the SPC cannot give is kept
    with the reason, told to the pod only if no other master key opens the document."""
    from csiprovider.stores.aws.dialect import pod_identity
    from csiprovider.stores.sops.document import FORMATS, infer_format
    from csiprovider.stores.sops.keys import (
        AGE_SECRET,
        AgeIdentity,
        IdentityError,
        age_identities,
    )
    from csiprovider.stores.sops.source import SopsSource, Unusable
    from csiprovider.stores.vault.source import VaultSource

    _check_fields(item, SOPS_FIELDS, label)
    if ("document" in item) == ("path" in item):
        raise InvalidArgument(
            f"{label}: set document (the encrypted document itself) or "
            "path (a file of the file backend), one of them"
        )
    fmt = _string(item, "format", label, required=False)
    text = _string(item, "document", label, required=False)
    file = None
    spec: dict[str, Any] = {}
    if "path" in item:
        found = _file_object(
            index,
            label,
            name,
            {"objectName": name, "backend": "file", "path": item["path"]},
            params,
        ).source
        assert isinstance(found, FileSource)
        file = found
        fmt = fmt or SOPS_EXTENSIONS.get(posixpath.splitext(file.path)[1], "binary")
        spec["path"] = file.path
    else:
        fmt = fmt or infer_format(text)
        spec["document"] = hashlib.sha256(text.encode()).hexdigest()
    if fmt not in FORMATS:
        raise InvalidArgument(f"{label}: format must be one of {', '.join(FORMATS)}")
    unusable = []
    age: tuple[AgeIdentity, ...] = ()
    raw_key = params.secrets.get(AGE_SECRET)
    if raw_key:
        try:
            age = age_identities(raw_key)
        except IdentityError as exc:
            raise InvalidArgument(f"{label}: {exc}") from None
    else:
        unusable.append(Unusable("age", f"no {AGE_SECRET} in the volume's nodePublishSecretRef"))
    vault = None
    vault_item = {k: v for k, v in item.items() if k in VAULT_SETTINGS}
    vault_item.update(backend="vault", secretPath="transit/decrypt/sops", method="POST")
    try:
        vault = cast(
            VaultSource, _vault_object(index, label, name, vault_item, params, defaults).source
        )
    except InvalidArgument as exc:
        unusable.append(Unusable("hc_vault", exc.message.removeprefix(f"{label}: ")))
    aws = None
    try:
        aws = pod_identity(params)
    except InvalidArgument as exc:
        unusable.append(Unusable("kms", exc.message))
    source = SopsSource(
        format=fmt,
        pod_uid=params.pod.uid,
        document=text,
        file=file,
        age=age,
        vault=vault,
        aws=aws,
        unusable=tuple(unusable),
    )
    spec["format"] = fmt
    return _common(index, label, name, item, params, source, spec)


def _kv_paths(prefix: str, version: int, label: str) -> tuple[str, str]:
    """(path to LIST, base path to read each key) for a KV prefix like `secret/app/`."""
    mount, _, rest = prefix.strip("/").partition("/")
    if not mount:
        raise InvalidArgument(f"{label}: prefix must start with the KV mount, e.g. secret/app/")
    if version == 1:
        return f"{mount}/{rest}".rstrip("/") + "/", f"{mount}/{rest}".rstrip("/")
    return f"{mount}/metadata/{rest}".rstrip("/") + "/", f"{mount}/data/{rest}".rstrip("/")


def _common(
    index: int,
    label: str,
    name: str,
    item: Mapping[str, Any],
    params: MountParams,
    source: Any,
    spec: dict[str, Any],
) -> MountObject:
    alias = _string(item, "objectAlias", label, required=False)
    file_name = alias or name
    field = "objectAlias" if alias else "objectName"
    try:
        validate_path(file_name)
    except PayloadError as exc:
        raise InvalidArgument(
            f"{label}: {field} {file_name!r} is not a valid file name ({_why(exc)}); use a "
            "relative name without '..', e.g. 'db-password'"
        ) from None
    mode = _mode(
        item.get("filePermission"), label, params.default_mode, params.parameters.get("objects", "")
    )
    encoding = _encoding(item.get("encoding"), label)
    jmes = _string(item, "jmesPath", label, required=False)
    expand = _string(item, "expand", label, required=False)
    if expand not in ("", "keys"):
        raise InvalidArgument(f"{label}: expand must be 'keys' (one file per top-level key)")
    spec = {**spec, "jmesPath": jmes, "expand": expand}
    write = item.get("render", True)
    if not isinstance(write, bool):
        raise InvalidArgument(f"{label}: render must be true or false")
    optional = item.get("optional", False)
    if not isinstance(optional, bool):
        raise InvalidArgument(f"{label}: optional must be true or false")
    full_spec = {
        "backend": item["backend"],
        "objectName": name,
        "file": file_name,
        "mode": mode,
        "encoding": encoding.value,
        **spec,
    }
    return MountObject(
        index=index,
        backend=str(item["backend"]),
        object_name=name,
        file_name=file_name,
        mode=mode,
        encoding=encoding,
        source=source,
        spec_json=canonical_json(full_spec),
        extraction=Extraction(jmes_path=jmes, expand=expand == "keys"),
        optional=optional,
        write=write,
    )


def _mode(value: Any, label: str, default: int, raw: str = "") -> int:
    """filePermission: an octal string ("0640") or a YAML integer (0640 is octal in YAML).
    `440` is refused: YAML reads it as the decimal 440 (0o670, group-writable), which is
    never what its author meant."""
    if value is None:
        return default
    mode: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        if re.fullmatch(r"[1-7][0-7]{2}", str(value)) and re.search(
            rf"""filePermission['"]?\s*:\s*{value}(?![0-9.])""", raw
        ):
            raise InvalidArgument(
                f"{label}: filePermission {value} is the decimal number {value} "
                f'({oct(value)}), not the mode 0{value}; write it as octal: "0{value}"'
            )
        mode = value
    elif isinstance(value, str) and _OCTAL.fullmatch(value.strip()):
        mode = int(value.strip().replace("o", ""), 8)
    if mode is None or not 0 <= mode <= 0o777:
        raise InvalidArgument(
            f"{label}: invalid filePermission {value!r}; use an octal string between "
            '"0000" and "0777", e.g. "0640"'
        )
    return mode


def _encoding(value: Any, label: str) -> Encoding:
    if value is None:
        return Encoding.UTF8
    try:
        return Encoding(str(value).lower())
    except ValueError:
        raise InvalidArgument(
            f"{label}: unknown encoding {value!r}; use one of "
            f"{', '.join(repr(e.value) for e in Encoding)}"
        ) from None


def _string(item: Mapping[str, Any], key: str, label: str, *, required: bool) -> str:
    value = item.get(key)
    if value is None or value == "":
        if required:
            raise InvalidArgument(f"{label}: missing required field {key}")
        return ""
    if not isinstance(value, str):
        raise InvalidArgument(f"{label}: {key} must be a string, got {_kind(value)}")
    return value


def _check_fields(item: Mapping[str, Any], allowed: frozenset[str], label: str) -> None:
    for key in item:
        if key not in allowed:
            raise InvalidArgument(
                f"{label}: unknown field {key!r}{_suggest(str(key), allowed)}; fields of this "
                f"backend: {', '.join(sorted(allowed))}"
            )


def _suggest(word: str, options: Mapping[str, Any] | frozenset[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _why(exc: PayloadError) -> str:
    return str(exc).split(": ", 1)[-1] if ": " in str(exc) else str(exc)


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


_BUILDERS: dict[str, Callable[[int, str, str, Mapping[str, Any], MountParams], MountObject]] = {
    "file": _file_object,
    "aws-kms": _aws_object,
    "aws-secretsmanager": _aws_object,
    "aws-ssm": _aws_object,
    "vault": _vault_object,
    "sops": _sops_object,
}

"""The `vault` dialect: vault-csi-provider's SecretProviderClass parameters, unchanged.

Parsing, defaults, validation order and messages follow vault-csi-provider (they surface
in pod events that operators already grep for). Where vault-csi-provider silently misbehaves
(file names with `..`, dedup ignoring `secretArgs`) we refuse or fix it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from csiprovider.compat.go import encoding_json as gojson
from csiprovider.compat.go.strconv import parse_bool
from csiprovider.compat.go.yaml_v3 import YamlError, load_objects
from csiprovider.errors import InvalidArgument
from csiprovider.model import Encoding, Extraction, MountObject, Wording, canonical_json
from csiprovider.paths import PayloadError, validate_path
from csiprovider.request import MountParams
from csiprovider.stores.vault.config import VaultConnection, VaultDefaults
from csiprovider.stores.vault.source import VaultIdentity, VaultSource

DEFAULT_AUDIENCE = "vault"
WHOLE_SECRET_MODES = ("data", "files")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


@dataclass(frozen=True)
class VaultObject:
    """One entry of `objects`, with vault-csi-provider's field names in comments."""

    object_name: str  # objectName
    secret_path: str  # secretPath, normalised to /v1/...
    query: tuple[tuple[str, str], ...]  # after '?' in secretPath
    secret_key: str  # secretKey
    method: str  # method (verbatim, GET when empty)
    secret_args: Mapping[str, Any] | None  # secretArgs, sent as the JSON body
    file_permission: int  # filePermission (0: the request's permission)
    encoding: Encoding  # encoding (only applied with secretKey)
    whole_secret: str  # ours: "data" or "files" when secretKey is empty
    jmes_path: str  # ours: extract a nested value instead of a top-level key


class VaultDialect:
    """Parses `provider: vault` Mounts; daemon-level defaults come from flags and env."""

    def __init__(self, defaults: VaultDefaults | None = None) -> None:
        self.defaults = defaults or VaultDefaults.build()

    def __call__(self, params: MountParams) -> list[MountObject]:
        p = params.parameters
        if "vaultKubernetesMountPath" in p and "vaultAuthMountPath" in p:
            raise InvalidArgument("cannot set both vaultKubernetesMountPath and vaultAuthMountPath")
        skip = False
        if "vaultSkipTLSVerify" in p:
            try:
                skip = parse_bool(p["vaultSkipTLSVerify"])
            except ValueError as exc:
                raise InvalidArgument(str(exc)) from None
        try:
            raw_objects = load_objects(
                p.get("objects", ""), extra_string_fields=("secretFormat", "jmesPath")
            )
        except YamlError as exc:
            raise InvalidArgument(f"failed to parse objects: {exc}") from None
        role = p.get("roleName", "")
        if not role:
            raise InvalidArgument("missing 'roleName' in SecretProviderClass definition")
        if not raw_objects:
            raise InvalidArgument(
                "no secrets configured - the provider will not read any secret material"
            )
        objects = [_vault_object(i, raw) for i, raw in enumerate(raw_objects)]
        duplicated = [
            n for n, c in Counter(o.object_name for o in objects).items() for _ in range(c - 1)
        ]
        if duplicated:
            raise InvalidArgument(
                "each `objectName` within a SecretProviderClass must be unique, but the "
                f"following keys were duplicated: {', '.join(duplicated)}"
            )
        connection = self.defaults.connection.overlay(
            address=p.get("vaultAddress", ""),
            namespace=p.get("vaultNamespace", ""),
            ca_cert=p.get("vaultCACertPath", ""),
            ca_path=p.get("vaultCADirectory", ""),
            tls_server_name=p.get("vaultTLSServerName", ""),
            client_cert=p.get("vaultTLSClientCertPath", ""),
            client_key=p.get("vaultTLSClientKeyPath", ""),
            skip_verify=skip,
        )
        identity = self._identity(params, connection, role)
        audience = p.get("audience", "") or DEFAULT_AUDIENCE
        token = params.tokens.get(audience)
        return [
            _mount_object(i, obj, identity, token.token if token else "", params.default_mode)
            for i, obj in enumerate(objects)
        ]

    def _identity(
        self, params: MountParams, connection: VaultConnection, role: str
    ) -> VaultIdentity:
        p = params.parameters
        mount = p.get("vaultKubernetesMountPath", p.get("vaultAuthMountPath", ""))
        return VaultIdentity(
            connection=connection,
            auth_mount=mount or self.defaults.auth_mount,
            role=role,
            audience=p.get("audience", ""),
            pod_namespace=params.pod.namespace,
            pod_name=params.pod.name,
            pod_uid=params.pod.uid,
            service_account=params.pod.service_account,
        )


def normalise_path(path: str) -> str:
    """vault-csi-provider's `/v1/` prefixing: secret/x, /secret/x, v1/secret/x → /v1/secret/x."""
    if path.startswith("/v1/"):
        return path
    if path.startswith("v1/"):
        return "/" + path
    if path.startswith("/"):
        return "/v1" + path
    return "/v1/" + path


def split_query(path: str, object_name: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """Split `?a=1&b=2` off a secretPath, rejecting what Go's url.ParseQuery rejects."""
    base, sep, query = path.partition("?")
    if not sep:
        return base, ()
    bad = _BAD_ESCAPE.search(query)
    problem = ""
    if bad:
        problem = f'invalid URL escape "{query[bad.start() : bad.start() + 3]}"'
    elif ";" in query:
        problem = "invalid semicolon separator in query"
    if problem:
        raise InvalidArgument(
            f"failed to parse query parameters from secretPath {path!r} for objectName "
            f"{object_name!r}: {problem}"
        )
    pairs = []
    for part in query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append((unquote(key.replace("+", " ")), unquote(value.replace("+", " "))))
    return base, tuple(sorted(pairs, key=lambda kv: kv[0]))  # Go encodes url.Values sorted


def _vault_object(index: int, raw: Mapping[str, Any]) -> VaultObject:
    name = str(raw.get("objectName") or "")
    label = f"objects[{index}] (objectName {name!r})"
    encoding_text = str(raw.get("encoding") or "utf-8").lower()
    try:
        encoding = Encoding(encoding_text)
    except ValueError:
        raise InvalidArgument(
            f"{label}: invalid encoding type. Should be utf-8, base64, or hex"
        ) from None
    args = raw.get("secretArgs")
    if args is not None and not isinstance(args, Mapping):
        raise InvalidArgument(f"{label}: secretArgs must be a mapping of request arguments")
    whole = str(raw.get("secretFormat") or "")
    if whole and whole not in WHOLE_SECRET_MODES:
        raise InvalidArgument(
            f"{label}: invalid secretFormat {whole!r}; use 'data' (the secret's data as one "
            "JSON file) or 'files' (one file per key)"
        )
    secret_key = str(raw.get("secretKey") or "")
    jmes_path = str(raw.get("jmesPath") or "")
    if sum(bool(x) for x in (secret_key, whole, jmes_path)) > 1:
        raise InvalidArgument(f"{label}: set only one of secretKey, secretFormat and jmesPath")
    base, query = split_query(str(raw.get("secretPath") or ""), name)
    return VaultObject(
        object_name=name,
        secret_path=normalise_path(base),
        query=query,
        secret_key=secret_key,
        method=str(raw.get("method") or "GET"),
        secret_args=args,
        file_permission=int(raw.get("filePermission") or 0),
        encoding=encoding,
        whole_secret=whole,
        jmes_path=jmes_path,
    )


def _mount_object(
    index: int, obj: VaultObject, identity: VaultIdentity, jwt: str, default_mode: int
) -> MountObject:
    label = f"objects[{index}] (objectName {obj.object_name!r})"
    try:
        validate_path(obj.object_name)
    except PayloadError as exc:
        raise InvalidArgument(
            f"{label}: objectName {obj.object_name!r} cannot be a file name ({exc}); use a "
            "relative name without '..', e.g. 'db-password'"
        ) from None
    mode = obj.file_permission or default_mode
    if not 0 <= mode <= 0o777:
        raise InvalidArgument(
            f"{label}: filePermission {oct(mode)} is not a file mode; write it as octal, e.g. 0640"
        )
    try:  # the bytes Go's json.Marshal would send
        body = gojson.dumps(obj.secret_args).decode() if obj.secret_args is not None else ""
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"{label}: secretArgs cannot be sent as JSON ({exc})") from None
    source = VaultSource(
        identity=identity,
        path=obj.secret_path,
        method=obj.method,
        query=obj.query,
        body=body,
        jwt=jwt,
    )
    spec = {
        "ObjectName": obj.object_name,
        "SecretPath": obj.secret_path,
        "Query": obj.query,
        "SecretKey": obj.secret_key,
        "Method": obj.method,
        "SecretArgs": body,
        "FilePermission": mode,
        "Encoding": obj.encoding.value,
        "SecretFormat": obj.whole_secret,
        "JMESPath": obj.jmes_path,
    }
    return MountObject(
        index=index,
        backend="vault",
        object_name=obj.object_name,
        file_name=obj.object_name,
        mode=mode,
        encoding=obj.encoding if obj.secret_key else Encoding.UTF8,
        source=source,
        spec_json=canonical_json(spec),
        extraction=Extraction(
            key=obj.secret_key,
            jmes_path=obj.jmes_path,
            expand=obj.whole_secret == "files",
            wording=Wording.VAULT,
            subject=obj.secret_path,
            reply=not (obj.secret_key or obj.jmes_path or obj.whole_secret),
        ),
    )

"""`csiprovider validate SPC.yaml...`: check SecretProviderClasses offline, in the dialect
each one's provider name selects, without contacting any backend.

Pod identity and tokens are stand-ins; everything the dialect checks (YAML, fields,
names, paths, modes, templates, the native JSON Schema) is checked for real. Unlike a
Mount, which stops at the first problem, validate reports every problem of every object
of every SecretProviderClass in each file, once each, at its line in the file:

1. The whole SPC goes through its dialect. Passing: ok.
2. A problem not tied to one object (a missing `roleName`) is reported once.
3. Otherwise each object goes through the dialect alone, so each one's first problem is
   found; the native JSON Schema then reports what the dialect let through, for the
   objects the dialect accepted (never a second message for one mistake).
4. Problems only the objects together have (duplicate names) come from step 1.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from csiprovider.dialects import Dialect
from csiprovider.errors import MountError
from csiprovider.local.spc import KIND, SecretProviderClass, SpcError, parse_spc
from csiprovider.request import parse_mount_request
from csiprovider.v1alpha1 import service_pb2 as pb

AUDIENCES = ("vault", "sts.amazonaws.com", "pods.eks.amazonaws.com")
KNOWN_NAMES = ("csiprovider", "vault", "aws")
_LABEL = re.compile(r"^objects\[(\d+)\]")
_DECIMAL_MODE = re.compile(
    r"""filePermission['"]?\s*:\s*([1-7][0-7]{2})(?=\s*(?:[,}#]|$))""", re.MULTILINE
)
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class Report:
    """What validate found in one SPC."""

    name: str
    dialect: str
    problems: list[str]
    warnings: list[str]
    files: int = 0


def dialect_for(provider: str) -> tuple[str, Dialect]:
    if provider == "vault":
        from csiprovider.stores.vault.dialect import VaultDialect

        return "vault", VaultDialect()
    if provider == "aws":
        from csiprovider.stores.aws.dialect import AwsDialect

        return "aws", AwsDialect(lambda namespace, pod: os.environ.get("AWS_REGION", "us-east-1"))
    from csiprovider.native.dialect import NativeDialect

    return "native", NativeDialect()


def validate(paths: Sequence[Path], out: TextIO, names: Sequence[str] = KNOWN_NAMES) -> int:
    """Print every SPC's verdict and problems; exit status 1 if any is invalid."""
    failed = 0
    for path in paths:
        try:
            found = list(_documents(path))
        except SpcError as exc:
            print(f"{path}: invalid: {exc}", file=out)
            failed += 1
            continue
        for doc, node in found:
            try:
                spc = parse_spc(doc, str(path))
            except SpcError as exc:
                print(f"{path}:{node.start_mark.line + 1}: invalid: {exc}", file=out)
                failed += 1
                continue
            report = check(spc, _objects_line(node), path, names)
            verdict = "invalid" if report.problems else "ok"
            detail = f"{report.dialect} dialect" + (
                "" if report.problems else f", {report.files} file(s)"
            )
            print(f"{path}: {report.name}: {verdict} ({detail})", file=out)
            for problem in report.problems:
                print(f"  {problem}", file=out)
            for warning in report.warnings:
                print(f"  warning: {warning}", file=out)
            failed += bool(report.problems)
    return 1 if failed else 0


def check(
    spc: SecretProviderClass,
    objects_line: int | None,
    path: Path,
    names: Sequence[str] = KNOWN_NAMES,
) -> Report:
    """Every problem of one SPC, each prefixed with `path:line:` where it is known."""
    name, dialect = dialect_for(spc.provider)
    report = Report(spc.name, name, [], [])
    if spc.provider not in names and spc.provider not in ("vault", "aws"):
        report.problems.append(
            f"{path}: spec.provider {spc.provider!r} is not a name csiprovider serves here: "
            f"the daemon serves it only when started with `--name {spc.provider}` (then in "
            "the native dialect); run validate with --name to check it as such"
        )
        return report
    raw = spc.parameters.get("objects") or ""
    items = _items(raw)

    def where(index: int | None) -> str:
        if index is None or objects_line is None or index >= len(items):
            return f"{path}:{objects_line}" if objects_line else str(path)
        return f"{path}:{objects_line + items[index][0]}"

    try:
        report.files = len(dialect(_request(spc, spc.parameters)))
    except MountError as whole:
        first = _LABEL.match(whole.message)
        if first is None or not items:
            report.problems.append(f"{where(None)}: {whole.message}")
        else:
            report.problems += _each_object(spc, dialect, name, items, where)
            if not report.problems:  # only the objects together are wrong
                report.problems.append(f"{where(int(first.group(1)))}: {whole.message}")
    else:
        if name == "native":
            report.problems += _schema(items, range(len(items)), where)
    report.warnings += _decimal_modes(raw, name, objects_line, path)
    return report


def _each_object(
    spc: SecretProviderClass,
    dialect: Dialect,
    name: str,
    items: list[tuple[int, yaml.Node]],
    where: Any,
) -> list[str]:
    problems: list[str] = []
    accepted: list[int] = []
    for index, (_, node) in enumerate(items):
        single = yaml.serialize(yaml.SequenceNode("tag:yaml.org,2002:seq", [node]))
        try:
            dialect(_request(spc, {**spc.parameters, "objects": single}))
        except MountError as exc:
            message = _LABEL.sub(f"objects[{index}]", exc.message, count=1)
            if " (objectName" not in message[:40] and not message.startswith("objects["):
                message = f"objects[{index}]: {message}"
            problems.append(f"{where(index)}: {message}")
        else:
            accepted.append(index)
    if name == "native":
        problems += _schema(items, accepted, where)
    return problems


def _schema(items: list[tuple[int, yaml.Node]], indexes: Iterable[int], where: Any) -> list[str]:
    from csiprovider.native import schema

    problems = []
    for index in indexes:
        value = yaml.load(yaml.serialize(items[index][1]), Loader=_LOADER)
        for problem in schema.errors([value]):
            problems.append(
                f"{where(index)}: {_LABEL.sub(f'objects[{index}]', problem)}; "
                "see the native dialect's JSON Schema"
            )
    return problems


def _decimal_modes(raw: str, dialect: str, objects_line: int | None, path: Path) -> list[str]:
    """vault-csi-provider and ASCP read `filePermission: 440` as the decimal number 440
    (0o670: group-writable); the native dialect refuses it, the others warn."""
    if dialect == "native":
        return []
    warnings = []
    for match in _DECIMAL_MODE.finditer(raw):
        line = raw.count("\n", 0, match.start())
        at = f"{path}:{objects_line + line}" if objects_line else str(path)
        value = int(match.group(1))
        warnings.append(
            f"{at}: filePermission {value} is the decimal number {value} "
            f"({oct(value)}), not 0{value}; {dialect}'s upstream accepts it, "
            f"write 0{value} if you meant octal"
        )
    return warnings


def _documents(path: Path) -> Iterable[tuple[Mapping[str, Any], yaml.Node]]:
    """Every SecretProviderClass of the file, with its node (for line numbers)."""
    try:
        text = path.read_text()
        nodes = list(yaml.compose_all(text, Loader=_LOADER))
        docs = list(yaml.safe_load_all(text))
    except OSError as exc:
        raise SpcError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SpcError(f"not valid YAML: {exc}") from None
    pairs: list[tuple[Any, yaml.Node]] = []
    for doc, node in zip(docs, nodes, strict=True):
        items = _child(node, "items")
        if (
            isinstance(doc, dict)
            and doc.get("kind") == "List"
            and isinstance(items, yaml.SequenceNode)
        ):  # `kubectl get secretproviderclasses -o yaml`
            pairs += zip(doc.get("items") or [], items.value, strict=False)
        else:
            pairs.append((doc, node))
    found = [(d, n) for d, n in pairs if isinstance(d, dict) and d.get("kind") == KIND]
    if not found:
        raise SpcError(f"no document of kind {KIND}")
    return found


def _objects_line(node: yaml.Node) -> int | None:
    """The file line (1-based) of the first line of `spec.parameters.objects`."""
    value = _child(_child(_child(node, "spec"), "parameters"), "objects")
    if not isinstance(value, yaml.ScalarNode):
        return None
    block = value.style in ("|", ">")
    return value.start_mark.line + (2 if block else 1)


def _child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    return next((v for k, v in node.value if getattr(k, "value", None) == key), None)


def _items(raw: str) -> list[tuple[int, yaml.Node]]:
    """(line within `objects`, node) of each object; none when it is not a YAML list."""
    try:
        root = yaml.compose(raw, Loader=_LOADER)
    except yaml.YAMLError:
        return []
    if not isinstance(root, yaml.SequenceNode):
        return []
    return [(item.start_mark.line, item) for item in root.value]


def _request(spc: SecretProviderClass, parameters: Mapping[str, str]) -> Any:
    tokens = {a: {"token": "validate", "expirationTimestamp": ""} for a in AUDIENCES}
    attributes = {
        **parameters,
        "csi.storage.k8s.io/pod.name": "validate",
        "csi.storage.k8s.io/pod.uid": "validate",
        "csi.storage.k8s.io/pod.namespace": spc.namespace or "default",
        "csi.storage.k8s.io/serviceAccount.name": "default",
        "secretProviderClass": spc.name,
        "csi.storage.k8s.io/serviceAccount.tokens": json.dumps(tokens),
    }
    return parse_mount_request(
        pb.MountRequest(
            attributes=json.dumps(attributes), target_path="/validate", permission="420"
        )
    )

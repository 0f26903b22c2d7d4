"""`csiprovider validate SPC.yaml`: check a SecretProviderClass offline, in the dialect
its provider name selects, without contacting any backend. Pod identity and tokens are
stand-ins; everything the dialect checks (YAML, fields, names, paths, modes, templates,
the native JSON Schema) is checked for real."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import yaml

from csiprovider.dialects import Dialect
from csiprovider.errors import MountError
from csiprovider.local.spc import SpcError, load_spc
from csiprovider.native import schema
from csiprovider.native.dialect import NativeDialect
from csiprovider.request import parse_mount_request
from csiprovider.stores.aws.dialect import AwsDialect
from csiprovider.stores.vault.dialect import VaultDialect
from csiprovider.v1alpha1 import service_pb2 as pb

AUDIENCES = ("vault", "sts.amazonaws.com", "pods.eks.amazonaws.com")


def dialect_for(provider: str) -> tuple[str, Dialect]:
    if provider == "vault":
        return "vault", VaultDialect()
    if provider == "aws":
        return "aws", AwsDialect(lambda namespace, pod: os.environ.get("AWS_REGION", "us-east-1"))
    return "native", NativeDialect()


def validate(paths: Sequence[Path], out: TextIO) -> int:
    """Print one line per file; exit status 1 if any is invalid."""
    failed = 0
    for path in paths:
        try:
            spc = load_spc(path)
        except SpcError as exc:
            print(f"{path}: invalid: {exc}", file=out)
            failed += 1
            continue
        name, dialect = dialect_for(spc.provider)
        tokens = {a: {"token": "validate", "expirationTimestamp": ""} for a in AUDIENCES}
        attributes = {
            **spc.parameters,
            "csi.storage.k8s.io/pod.name": "validate", "csi.storage.k8s.io/pod.uid": "validate",
            "csi.storage.k8s.io/pod.namespace": spc.namespace or "default",
            "csi.storage.k8s.io/serviceAccount.name": "default",
            "secretProviderClass": spc.name,
            "csi.storage.k8s.io/serviceAccount.tokens": json.dumps(tokens),
        }
        request = pb.MountRequest(attributes=json.dumps(attributes), target_path="/validate",
                                  permission="420")
        problems: list[str] = []
        if name == "native":
            try:
                problems = schema.errors(yaml.safe_load(spc.parameters.get("objects") or ""))
            except yaml.YAMLError:
                problems = []  # the dialect reports the YAML error with its position
        try:
            objects = dialect(parse_mount_request(request))
        except MountError as exc:
            problems = [exc.message, *problems]
            objects = []
        if problems:
            failed += 1
            print(f"{path}: invalid ({name} dialect)", file=out)
            for problem in dict.fromkeys(problems):
                print(f"  {problem}", file=out)
        else:
            print(f"{path}: ok ({name} dialect, {len(objects)} file(s))", file=out)
    return 1 if failed else 0

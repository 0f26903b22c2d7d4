"""`csiprovider validate`: SPCs of every dialect checked offline, the native JSON Schema
with exact error paths."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml

from csiprovider.local.validate import validate
from csiprovider.native import schema

ROOT = Path(__file__).resolve().parents[2]


def spc(tmp_path: Path, provider: str, objects: str, **params: str) -> Path:
    path = tmp_path / f"{provider}-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "secrets-store.csi.x-k8s.io/v1",
                "kind": "SecretProviderClass",
                "metadata": {"name": "x"},
                "spec": {"provider": provider, "parameters": {"objects": objects, **params}},
            }
        )
    )
    return path


def run(*paths: Path) -> tuple[int, str]:
    out = io.StringIO()
    return validate(list(paths), out), out.getvalue()


def test_every_shipped_example_is_valid() -> None:
    examples = sorted((ROOT / "daemonset" / "examples").glob("*.yaml"))
    code, text = run(*examples, ROOT / "examples" / "spc-file.yaml")
    assert code == 0, text
    assert text.count(": ok (") == len(examples) + 1


def test_errors_in_each_dialect(tmp_path: Path) -> None:
    code, text = run(
        spc(tmp_path, "vault", "- {objectName: a, secretPath: x}"),
        spc(tmp_path, "aws", "- {objectName: x}", region="us-east-1"),
        spc(tmp_path, "csiprovider", "- {objectName: a, backend: file, jmesPath: 5}"),
        spc(tmp_path, "csiprovider", "- {objectName: t, template: '{{ oops'}"),
    )
    assert code == 1
    assert "missing 'roleName' in SecretProviderClass definition" in text
    assert "Must use objectType when a full ARN is not specified: x" in text
    assert "jmesPath must be a string" in text or "objects[0].jmesPath: 5 is not of type" in text
    assert "template syntax error" in text
    assert text.count("invalid (") == 4


@pytest.mark.parametrize(
    ("objects", "path"),
    [
        ([{"objectName": "a", "backend": "vault"}], "objects[0]"),
        (
            [
                {
                    "objectName": "a",
                    "backend": "aws-kms",
                    "ciphertext": "AA==",
                    "encryptionContext": {"k": 1},
                }
            ],
            "objects[0].encryptionContext.k",
        ),
        (
            [
                {"objectName": "a", "backend": "file"},
                {"objectName": "b", "backend": "file", "expand": "values"},
            ],
            "objects[1].expand",
        ),
        (
            [{"objectName": "a", "backend": "vault", "secretPath": "p", "secretArgs": "x"}],
            "objects[0].secretArgs",
        ),
    ],
)
def test_schema_paths(objects: list[dict[str, object]], path: str) -> None:
    problem = schema.first_error(objects)
    assert problem is not None and problem.startswith(f"{path}:")


MULTI = """\
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: first}
spec:
  provider: csiprovider
  parameters:
    objects: |
      - objectName: good
        backend: file
      - objectName: bad-backend
        backend: fil
      - objectName: bad-mode
        backend: file
        filePermission: 440
      - objectName: bad-expand
        backend: file
        expand: values
---
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: second}
spec:
  provider: vault
  parameters:
    roleName: app
    objects: |
      - objectName: a
        secretPath: secret/data/a
        filePermission: 440
---
apiVersion: v1
kind: Pod
metadata: {name: not-an-spc}
"""


def test_every_problem_of_every_spc_at_its_file_line(tmp_path: Path) -> None:
    path = tmp_path / "multi.yaml"
    path.write_text(MULTI)
    code, text = run(path)
    assert code == 1
    assert f"{path}: first: invalid (native dialect)" in text
    assert f"{path}:10: objects[1] (objectName 'bad-backend'): unknown backend 'fil'" in text
    assert (
        f"{path}:12: objects[2] (objectName 'bad-mode'): filePermission 440 is the "
        "decimal number 440 (0o670)"
    ) in text
    assert f"{path}:15: objects[3] (objectName 'bad-expand'): expand must be 'keys'" in text
    assert "objects[0]" not in text  # the good object has nothing to say
    # one message per mistake: no JSON Schema echo of what the dialect already said
    assert text.count("must be 'keys'") == 1 and "JSON Schema" not in text
    assert f"{path}: second: ok (vault dialect, 1 file(s))" in text
    assert f"warning: {path}:29: filePermission 440 is the decimal number 440 (0o670)" in text


def test_a_provider_name_not_served_is_said_plainly(tmp_path: Path) -> None:
    path = spc(tmp_path, "gcp", "- {objectName: a, backend: file}")
    code, text = run(path)
    assert code == 1 and "spec.provider 'gcp' is not a name csiprovider serves here" in text
    assert "--name gcp" in text
    out = io.StringIO()
    assert validate([path], out, ("csiprovider", "gcp")) == 0
    assert "ok (native dialect" in out.getvalue()


def test_octal_modes_stay_accepted(tmp_path: Path) -> None:
    code, text = run(
        spc(
            tmp_path,
            "csiprovider",
            "- {objectName: a, backend: file, filePermission: 0777}\n"
            "- {objectName: b, backend: file, filePermission: '0440'}",
        )
    )
    assert code == 0, text


def test_kubectl_list_output_is_read_item_by_item(tmp_path: Path) -> None:
    """`kubectl get secretproviderclasses -A -o yaml` prints one `kind: List`."""
    items = [yaml.safe_load(doc) for doc in MULTI.split("---\n")[:2]]
    path = tmp_path / "list.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}))
    code, text = run(path)
    assert code == 1
    assert f"{path}: first: invalid (native dialect)" in text
    assert f"{path}: second: ok (vault dialect, 1 file(s))" in text

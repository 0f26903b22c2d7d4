"""ASCP's `objects` YAML semantics and validation messages."""

from __future__ import annotations

import re

import pytest

from csiprovider.stores.aws.objects import ObjectsError, load, translation

R = ["us-east-1"]
R2 = ["us-east-1", "us-west-2"]


def test_yaml_11_case_insensitive_keys_and_coercion() -> None:
    (d,) = load(
        """
- ObjectName: "MySecret"
  objectType: secretsmanager
  objectVersion: 1
  objectVersionLabel: yes
  unknownKey: whatever
  jmesPath:
    - Path: username
      ObjectAlias: user
      FilePermission: "0600"
""",
        R,
        "_",
    )
    assert d.object_name == "MySecret" and d.object_version == "1"
    assert d.object_version_label == "true"  # YAML 1.1: yes is a boolean
    assert d.jmes_path[0].path == "username" and d.jmes_path[0].file_permission == "0600"


def test_type_from_arn_and_file_names() -> None:
    a, b, c = load(
        """
- {objectName: "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf"}
- {objectName: /app/db/password, objectType: ssmparameter}
- {objectName: mypath/x, objectType: ssmparameter, objectAlias: alias}
""",
        R,
        "_",
    )
    assert a.secret_type == "secretsmanager" and b.secret_type == "ssmparameter"
    assert b.file_name("_") == "_app_db_password" and b.file_name("") == "app/db/password"
    assert c.file_name("_") == "alias"
    assert a.file_name("_") == "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf"


def test_path_translation_values() -> None:
    assert translation("") == "_" and translation("False") == "" and translation("-") == "-"
    with pytest.raises(ObjectsError, match="pathTranslation must be either 'False' or a single"):
        translation("--")
    with pytest.raises(ObjectsError):
        translation("é")  # two bytes


@pytest.mark.parametrize(
    ("objects", "regions", "message"),
    [
        ("- {objectType: secretsmanager}", R, "Object name must be specified"),
        ("- {objectName: x}", R, "Must use objectType when a full ARN is not specified: x"),
        ("- {objectName: x, objectType: ssm}", R, "Invalid objectType: ssm"),
        ("- {objectName: x, objectType: vault}", R, "Invalid objectType: vault"),
        ("- {objectName: 'arn::'}", R, "Invalid ARN format in object name: arn::"),
        (
            "- {objectName: 'arn:aws:secretsmanager:us-west-2:1:secret:x'}",
            R,
            "ARN region must match region us-east-1: arn:aws:secretsmanager:us-west-2:1:secret:x",
        ),
        ("- {objectName: 'arn:aws:s3:us-east-1:1:bucket'}", R, "Invalid service in ARN: s3"),
        (
            "- {objectName: 'arn:aws:ssm:us-east-1:1:parameter/x', objectType: secretsmanager}",
            R,
            "objectType does not match ARN: arn:aws:ssm:us-east-1:1:parameter/x",
        ),
        (
            "- {objectName: p, objectType: ssmparameter, objectVersion: '1', objectVersionLabel: l}",
            R,
            "ssm parameters can not specify both objectVersion and objectVersionLabel: p",
        ),
        (
            "- {objectName: x, objectType: secretsmanager, filePermission: 0600}",
            R,
            "Invalid File Permission: 384",
        ),
        (
            "- {objectName: x, objectType: secretsmanager, filePermission: '0900'}",
            R,
            "Invalid File Permission: 0900",
        ),
        (
            "- {objectName: x, objectType: secretsmanager, jmesPath: [{objectAlias: a}]}",
            R,
            "Path must be specified for JMES object",
        ),
        (
            "- {objectName: x, objectType: secretsmanager, jmesPath: [{path: a}]}",
            R,
            "Object alias must be specified for JMES object",
        ),
        (
            "- {objectName: x, objectType: secretsmanager, failoverObject: {objectName: y}}",
            R2,
            "object alias must be specified for objects with failover entries: x",
        ),
        (
            "- {objectName: x, objectType: secretsmanager, objectAlias: a, failoverObject: {objectName: y}}",
            R,
            "failover object allowed only when failover region is defined: x",
        ),
        (
            "- {objectName: x, objectType: secretsmanager, objectAlias: a, objectVersion: '1',"
            " failoverObject: {objectName: y, objectVersion: '2'}}",
            R2,
            "object versions must match between primary and failover regions: x",
        ),
        (
            "- {objectName: x, objectType: secretsmanager}\n- {objectName: x, objectType: secretsmanager}",
            R,
            "found descriptor with duplicate object name x, no object alias, and no version label",
        ),
        (
            "- {objectName: x, objectType: secretsmanager, objectAlias: a}\n"
            "- {objectName: x, objectType: secretsmanager, objectAlias: a}",
            R,
            "found descriptor with duplicate object name x, duplicate object alias a, and no version label",
        ),
        (
            "- {objectName: x, objectType: secretsmanager, objectVersionLabel: l}\n"
            "- {objectName: x, objectType: secretsmanager, objectVersionLabel: l}",
            R,
            "found descriptor with duplicate object name x, no object alias, and duplicate version label l",
        ),
        (
            "- {objectName: x, objectType: secretsmanager, objectAlias: a}\n"
            "- {objectName: y, objectType: secretsmanager, objectAlias: a}",
            R,
            "found duplicate object alias a",
        ),
        (
            "- {objectName: x, objectType: secretsmanager, objectAlias: a, jmesPath: [{path: p, objectAlias: a}]}",
            R,
            "Name already in use for objectAlias: found duplicate object alias a in JMES path entry p",
        ),
        ("- ", R, "Empty descriptor entry in SecretProviderClass"),
        ("objectName: x", R, "Failed to load SecretProviderClass: "),
        (
            "- {objectName: {a: b}, objectType: secretsmanager}",
            R,
            "cannot unmarshal object into Go struct field SecretDescriptor.objectName of type string",
        ),
    ],
)
def test_validation_messages(objects: str, regions: list[str], message: str) -> None:
    with pytest.raises(ObjectsError) as info:
        load(objects, regions, "_")
    assert message in str(info.value)


def test_traversal_only_matters_without_translation() -> None:
    load("- {objectName: ../x, objectType: secretsmanager}", R, "_")  # becomes .._x
    with pytest.raises(ObjectsError, match=re.escape("path can not contain ../: ../x")):
        load("- {objectName: ../x, objectType: secretsmanager}", R, "")


def test_allowed_names_that_look_like_traversal() -> None:
    load(
        "- {objectName: ..x, objectType: secretsmanager}\n"
        "- {objectName: x.., objectType: secretsmanager}",
        R,
        "_",
    )

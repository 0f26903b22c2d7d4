"""The aws dialect against a real moto server: IRSA through STS, Secrets Manager, SSM
batches, failover, change detection and errors, through the real gRPC server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import boto3
import grpc
import pytest

from csiprovider.server import ServeConfig
from testkit.daemon import running
from testkit.requests import mount_request
from testkit.servers import KubeAPI, Signer


def admin(moto: str, service: str, region: str = "us-east-1") -> Any:
    return boto3.client(
        service,
        endpoint_url=moto,
        region_name=region,  # type: ignore[call-overload]
        aws_access_key_id="admin",
        aws_secret_access_key="admin",
    )


@pytest.fixture
async def aws(
    serve_config: Callable[..., ServeConfig], kube_api: KubeAPI, aws_env: str
) -> AsyncIterator[Any]:
    async with running(serve_config(names=["aws"], kube_api_url=kube_api.url)) as stubs:
        yield stubs["aws"]


def request(signer: Signer, objects: str, **params: str) -> Any:
    tokens = {
        "sts.amazonaws.com": {
            "token": signer.token("default", "app", ["sts.amazonaws.com"]),
            "expirationTimestamp": "2030-01-01T00:00:00Z",
        }
    }
    extra = {
        "region": "us-east-1",
        **params,
        "csi.storage.k8s.io/serviceAccount.tokens": json.dumps(tokens),
    }
    return mount_request(objects, extra=extra)


def files(reply: Any) -> dict[str, bytes]:
    return {f.path: f.contents for f in reply.files}


def versions(reply: Any) -> dict[str, str]:
    return {v.id: v.version for v in reply.object_version}


async def test_secrets_manager_names_arns_binary_and_jmespath(
    aws: Any, aws_env: str, signer: Signer
) -> None:
    sm = admin(aws_env, "secretsmanager")
    db = sm.create_secret(
        Name="prod/db",
        SecretString=json.dumps(
            {"username": "app", "password": "pw", "port": 5432, "tls": {"on": True}}
        ),
    )
    binary = sm.create_secret(Name="keystore", SecretBinary=b"\x00\x01binary")
    reply = await aws.Mount(
        request(
            signer,
            f"""
- objectName: prod/db
  objectType: secretsmanager
  jmesPath:
    - {{path: username, objectAlias: dbuser}}
    - {{path: port, objectAlias: dbport, filePermission: "0600"}}
    - {{path: tls, objectAlias: dbtls}}
- objectName: "{binary["ARN"]}"
  objectAlias: keystore.p12
""",
        )
    )
    got = files(reply)
    assert got["prod_db"].startswith(b'{"username"')
    assert (got["dbuser"], got["dbport"], got["dbtls"]) == (b"app", b"5432", b'{"on":true}')
    assert got["keystore.p12"] == b"\x00\x01binary"
    assert {f.path: f.mode for f in reply.files}["dbport"] == 0o600
    assert versions(reply) == {
        "prod_db": db["VersionId"],
        "dbuser": db["VersionId"],
        "dbport": db["VersionId"],
        "dbtls": db["VersionId"],
        "keystore.p12": binary["VersionId"],
    }


async def test_version_ids_and_labels(aws: Any, aws_env: str, signer: Signer) -> None:
    sm = admin(aws_env, "secretsmanager")
    first = sm.create_secret(Name="rotating", SecretString="one")
    sm.put_secret_value(SecretId="rotating", SecretString="two")
    reply = await aws.Mount(
        request(
            signer,
            f"""
- {{objectName: rotating, objectType: secretsmanager, objectAlias: current}}
- {{objectName: rotating, objectType: secretsmanager, objectAlias: previous, objectVersionLabel: AWSPREVIOUS}}
- {{objectName: rotating, objectType: secretsmanager, objectAlias: pinned, objectVersion: "{first["VersionId"]}"}}
""",
        )
    )
    assert files(reply) == {"current": b"two", "previous": b"one", "pinned": b"one"}
    assert versions(reply)["pinned"] == first["VersionId"]


async def test_ssm_batches_of_23_and_two_selectors(aws: Any, aws_env: str, signer: Signer) -> None:
    ssm = admin(aws_env, "ssm")
    for i in range(23):
        ssm.put_parameter(Name=f"/batch/p{i}", Value=f"value-{i}", Type="String", Overwrite=True)
    ssm.put_parameter(Name="/batch/p0", Value="value-0-v2", Type="String", Overwrite=True)
    objects = "".join(
        f"- {{objectName: /batch/p{i}, objectType: ssmparameter}}\n" for i in range(23)
    )
    objects += (
        "- {objectName: /batch/p0, objectType: ssmparameter, objectVersion: '1',"
        " objectAlias: p0-first}\n"
    )
    reply = await aws.Mount(request(signer, objects))
    got = files(reply)
    assert got["_batch_p5"] == b"value-5" and got["_batch_p22"] == b"value-22"
    assert got["_batch_p0"] == b"value-0-v2" and got["p0-first"] == b"value-0"
    assert versions(reply)["_batch_p0"] == "2" and versions(reply)["p0-first"] == "1"


async def test_errors_name_the_object_and_the_cause(aws: Any, aws_env: str, signer: Signer) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await aws.Mount(request(signer, "- {objectName: nope, objectType: secretsmanager}"))
    assert info.value.code() is grpc.StatusCode.NOT_FOUND
    assert "objects[0] (objectName 'nope')" in (info.value.details() or "")
    assert "ResourceNotFoundException" in (info.value.details() or "")
    sm = admin(aws_env, "secretsmanager")
    sm.create_secret(Name="plain", SecretString="not json")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await aws.Mount(
            request(
                signer,
                "- {objectName: plain, objectType: secretsmanager, "
                "jmesPath: [{path: a, objectAlias: a}]}",
            )
        )
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "Invalid JSON used with jmesPath in secret: plain" in (info.value.details() or "")
    assert "not json" not in (info.value.details() or "")


async def test_ascp_validation_reaches_the_pod(aws: Any, signer: Signer) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await aws.Mount(request(signer, "- {objectName: x}"))
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == "Must use objectType when a full ARN is not specified: x"
    req = mount_request(
        "- {objectName: x, objectType: secretsmanager}", extra={"region": "us-east-1"}
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await aws.Mount(req)
    assert (info.value.details() or "").startswith(
        "CSI token error: serviceAccount.tokens not provided"
    )


async def test_missing_role_annotation(aws: Any, kube_api: KubeAPI, signer: Signer) -> None:
    kube_api.service_accounts[("default", "app")] = {}
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await aws.Mount(request(signer, "- {objectName: x, objectType: secretsmanager}"))
    assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "An IAM role must be associated with service account app (namespace: default)" in (
        info.value.details() or ""
    )


async def test_region_from_the_node_label(
    aws: Any, aws_env: str, kube_api: KubeAPI, signer: Signer
) -> None:
    admin(aws_env, "secretsmanager", "eu-west-1").create_secret(Name="eu", SecretString="eu!")
    kube_api.pods[("default", "app-0")] = "node-1"
    kube_api.nodes["node-1"] = {"topology.kubernetes.io/region": "eu-west-1"}
    req = request(signer, "- {objectName: eu, objectType: secretsmanager}")
    attrs = json.loads(req.attributes)
    del attrs["region"]
    req.attributes = json.dumps(attrs)
    assert files(await aws.Mount(req)) == {"eu": b"eu!"}


async def test_region_read_once_at_start_from_the_daemons_node(
    serve_config: Callable[..., ServeConfig], aws_env: str, kube_api: KubeAPI, signer: Signer
) -> None:
    """NODE_NAME (downward API): the node's region label is read once at start; Mounts
    then look up neither pods nor nodes (the RBAC needs only `get nodes`)."""
    admin(aws_env, "secretsmanager", "eu-west-3").create_secret(Name="paris", SecretString="p!")
    kube_api.nodes["node-paris"] = {"topology.kubernetes.io/region": "eu-west-3"}
    req = request(signer, "- {objectName: paris, objectType: secretsmanager}")
    attrs = json.loads(req.attributes)
    del attrs["region"]
    req.attributes = json.dumps(attrs)
    nodes, pods = kube_api.count("GET", "/nodes/"), kube_api.count("GET", "/pods/")
    config = serve_config(
        names=["aws"], kube_api_url=kube_api.url, node_name="node-paris", aws_region=""
    )
    async with running(config) as stubs:
        for _ in range(3):
            assert files(await stubs["aws"].Mount(req)) == {"paris": b"p!"}
    assert kube_api.count("GET", "/nodes/") - nodes == 1
    assert kube_api.count("GET", "/pods/") == pods


@pytest.fixture
def proxy(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from testkit.servers import start_aws_proxy

    p = start_aws_proxy(aws_env)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", p.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", p.url)
    yield p
    p.server.shutdown()


async def test_failover_only_when_the_primary_fails(
    aws: Any, aws_env: str, proxy: Any, signer: Signer
) -> None:
    admin(aws_env, "secretsmanager", "us-east-1").create_secret(Name="fo", SecretString="east")
    admin(aws_env, "secretsmanager", "us-west-2").create_secret(Name="fo", SecretString="west")
    objects = "- {objectName: fo, objectType: secretsmanager}"
    reply = await aws.Mount(request(signer, objects, failoverRegion="us-west-2"))
    assert files(reply) == {"fo": b"east"}
    assert proxy.count("GetSecretValue", "us-west-2") == 0  # ASCP always calls both
    proxy.down.add("us-east-1")
    reply = await aws.Mount(request(signer, objects + "\n", failoverRegion="us-west-2"))
    assert files(reply) == {"fo": b"west"}
    assert proxy.count("GetSecretValue", "us-west-2") == 1


async def test_client_error_in_primary_fails_without_failover(
    aws: Any, proxy: Any, signer: Signer
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await aws.Mount(
            request(
                signer,
                "- {objectName: missing-everywhere, objectType: secretsmanager}",
                failoverRegion="us-west-2",
            )
        )
    assert info.value.code() is grpc.StatusCode.NOT_FOUND
    assert proxy.count("GetSecretValue", "us-west-2") == 0


async def test_repeated_mount_asks_describe_secret_only(
    serve_config: Callable[..., ServeConfig],
    kube_api: KubeAPI,
    aws_env: str,
    proxy: Any,
    signer: Signer,
) -> None:
    sm = admin(aws_env, "secretsmanager")
    sm.create_secret(Name="watched", SecretString="v1")
    objects = "- {objectName: watched, objectType: secretsmanager}"
    async with running(serve_config(names=["aws"], kube_api_url=kube_api.url)) as stubs:
        assert files(await stubs["aws"].Mount(request(signer, objects))) == {"watched": b"v1"}
        for _ in range(3):  # republishes with nothing changed
            assert files(await stubs["aws"].Mount(request(signer, objects))) == {"watched": b"v1"}
        assert proxy.count("GetSecretValue") == 1 and proxy.count("DescribeSecret") == 3
        sm.put_secret_value(SecretId="watched", SecretString="v2")
        assert files(await stubs["aws"].Mount(request(signer, objects))) == {"watched": b"v2"}
        assert proxy.count("GetSecretValue") == 2


async def test_throttling_is_retried(aws: Any, aws_env: str, proxy: Any, signer: Signer) -> None:
    admin(aws_env, "secretsmanager").create_secret(Name="busy", SecretString="ok")
    proxy.errors["GetSecretValue"] = [(400, "ThrottlingException")] * 2
    reply = await aws.Mount(request(signer, "- {objectName: busy, objectType: secretsmanager}"))
    assert files(reply) == {"busy": b"ok"}
    assert proxy.count("GetSecretValue") == 3


async def test_access_denied_is_named(aws: Any, proxy: Any, signer: Signer) -> None:
    proxy.errors["GetSecretValue"] = [(400, "AccessDeniedException")]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await aws.Mount(request(signer, "- {objectName: x, objectType: secretsmanager}"))
    assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "access denied: GetSecretValue AccessDeniedException" in (info.value.details() or "")


async def test_pod_identity_agent(
    serve_config: Callable[..., ServeConfig], aws_env: str, signer: Signer
) -> None:
    from testkit.servers import start_pod_identity_agent

    admin(aws_env, "secretsmanager").create_secret(Name="pi", SecretString="from-pod-identity")
    server, url, seen = start_pod_identity_agent(
        {
            "AccessKeyId": "ASIAPODIDENTITY",
            "SecretAccessKey": "secret",
            "Token": "session",
            "Expiration": "2030-01-01T00:00:00Z",
        }
    )
    token = signer.token("default", "app", ["pods.eks.amazonaws.com"])
    req = mount_request(
        "- {objectName: pi, objectType: secretsmanager}",
        extra={
            "region": "us-east-1",
            "usePodIdentity": "true",
            "csi.storage.k8s.io/serviceAccount.tokens": json.dumps(
                {"pods.eks.amazonaws.com": {"token": token, "expirationTimestamp": ""}}
            ),
        },
    )
    try:
        async with running(serve_config(names=["aws"], aws_pod_identity_endpoint=url)) as stubs:
            assert files(await stubs["aws"].Mount(req)) == {"pi": b"from-pod-identity"}
            await stubs["aws"].Mount(req)
    finally:
        server.shutdown()
    assert seen == [token]  # credentials cached until near expiry: one agent call


async def test_kms_round_trip_through_encrypt_command_and_native_objects(
    serve_config: Callable[..., ServeConfig],
    kube_api: KubeAPI,
    aws_env: str,
    signer: Signer,
) -> None:
    import os
    import subprocess
    import sys

    import yaml

    key = admin(aws_env, "kms").create_key()["KeyMetadata"]["KeyId"]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "csiprovider",
            "encrypt",
            "--key-id",
            key,
            "--region",
            "us-east-1",
            "--context",
            "app=web",
            "--object-name",
            "db-password",
        ],
        input=b"kms-plaintext-Qx9",
        capture_output=True,
        timeout=60,
        env={**os.environ, "AWS_ACCESS_KEY_ID": "admin", "AWS_SECRET_ACCESS_KEY": "admin"},
    )
    assert out.returncode == 0, out.stderr
    snippet = out.stdout.decode()
    assert "kms-plaintext" not in snippet
    (entry,) = yaml.safe_load(snippet)
    assert entry["backend"] == "aws-kms" and entry["encryptionContext"] == {"app": "web"}
    sm = admin(aws_env, "secretsmanager")
    sm.create_secret(Name="native/db", SecretString=json.dumps({"user": "u1", "n": 3}))
    admin(aws_env, "ssm").put_parameter(Name="/native/p", Value="pv", Type="String", Overwrite=True)
    objects = snippet + (
        "- {objectName: db-user, backend: aws-secretsmanager, secretId: native/db,"
        " jmesPath: user}\n"
        "- {objectName: db-n, backend: aws-secretsmanager, secretId: native/db, jmesPath: n}\n"
        "- {objectName: param, backend: aws-ssm, parameter: /native/p, filePermission: '0600'}\n"
    )
    async with running(serve_config(kube_api_url=kube_api.url)) as stubs:
        reply = await stubs["csiprovider"].Mount(request(signer, objects))
        assert files(reply) == {
            "db-password": b"kms-plaintext-Qx9",
            "db-user": b"u1",
            "db-n": b"3",
            "param": b"pv",
        }
        wrong = yaml.safe_load(snippet)
        wrong[0]["encryptionContext"] = {"app": "other"}
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stubs["csiprovider"].Mount(request(signer, yaml.safe_dump(wrong)))
    assert "KMS Decrypt failed" in (info.value.details() or "")
    assert all(len(v) == 44 for v in versions(reply).values())  # keyed hashes, not plaintext


async def test_base64_decode_and_failover_object(
    aws: Any, aws_env: str, proxy: Any, signer: Signer
) -> None:
    import base64

    east = admin(aws_env, "secretsmanager", "us-east-1")
    west = admin(aws_env, "secretsmanager", "us-west-2")
    east.create_secret(
        Name="ks", SecretString=json.dumps({"p12": base64.b64encode(b"\x30\x82binary").decode()})
    )
    west.create_secret(
        Name="ks-replica",
        SecretString=json.dumps({"p12": base64.b64encode(b"\x30\x82west").decode()}),
    )
    objects = """
- objectName: ks
  objectType: secretsmanager
  objectAlias: keystore.json
  failoverObject: {objectName: ks-replica}
  jmesPath:
    - {path: p12, objectAlias: keystore.p12, encoding: base64}
"""
    reply = await aws.Mount(request(signer, objects, failoverRegion="us-west-2"))
    assert files(reply)["keystore.p12"] == b"\x30\x82binary"
    proxy.down.add("us-east-1")
    reply = await aws.Mount(request(signer, objects + "\n", failoverRegion="us-west-2"))
    assert files(reply)["keystore.p12"] == b"\x30\x82west"  # the failover object's name

"""One native SecretProviderClass across backends, with uniform extraction."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import grpc
import pytest

from csiprovider.server import ServeConfig
from testkit.daemon import running
from testkit.requests import mount_request
from testkit.servers import KubeAPI, OpenBao, Signer

ROLE = "arn:aws:iam::123456789012:role/app"


@pytest.fixture
def world(
    openbao: OpenBao, moto: str, kube_api: KubeAPI, monkeypatch: pytest.MonkeyPatch, file_root: Path
) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto)
    kube_api.service_accounts[("default", "app")] = {"eks.amazonaws.com/role-arn": ROLE}
    openbao.api(
        "POST",
        "secret/data/mixed",
        {"data": {"db": {"host": "db.local", "port": 5432}, "user": "vault-user"}},
    )
    boto3.client(
        "ssm",
        endpoint_url=moto,
        region_name="us-east-1",
        aws_access_key_id="a",
        aws_secret_access_key="b",
    ).put_parameter(
        Name="/mixed/flags", Value=json.dumps({"a": True, "b": "on"}), Type="String", Overwrite=True
    )
    (file_root / "default" / "conf.json").write_text(json.dumps({"level": "debug", "n": [1, 2]}))
    yield {"bao": openbao}


def request(signer: Signer, bao: OpenBao, objects: str) -> Any:
    tokens = {
        aud: {"token": signer.token("default", "app", [aud]), "expirationTimestamp": ""}
        for aud in ("vault", "custom-audience", "sts.amazonaws.com")
    }
    return mount_request(
        objects,
        extra={
            "vaultAddress": bao.addr,
            "roleName": "app",
            "region": "us-east-1",
            "csi.storage.k8s.io/serviceAccount.tokens": json.dumps(tokens),
        },
    )


async def test_mixed_backends_and_extraction(
    serve_config: Callable[..., ServeConfig],
    kube_api: KubeAPI,
    signer: Signer,
    world: dict[str, Any],
) -> None:
    objects = """
- {objectName: level, backend: file, path: conf.json, jmesPath: level}
- {objectName: numbers, backend: file, path: conf.json, jmesPath: n}
- {objectName: db-port, backend: vault, secretPath: secret/data/mixed, jmesPath: db.port}
- {objectName: db, backend: vault, secretPath: secret/data/mixed, jmesPath: db, expand: keys}
- {objectName: user2, backend: vault, secretPath: secret/data/mixed, secretKey: user,
   roleName: custom-aud, audience: custom-audience}
- {objectName: flags, backend: aws-ssm, parameter: /mixed/flags, expand: keys}
"""
    async with running(serve_config(kube_api_url=kube_api.url)) as stubs:
        reply = await stubs["csiprovider"].Mount(request(signer, world["bao"], objects))
    got = {f.path: f.contents for f in reply.files}
    assert got == {
        "level": b"debug",
        "numbers": b"[1,2]",
        "db-port": b"5432",
        "db/host": b"db.local",
        "db/port": b"5432",
        "user2": b"vault-user",
        "flags/a": b"true",
        "flags/b": b"on",
    }
    assert [v.id for v in reply.object_version] == [
        "level",
        "numbers",
        "db-port",
        "db",
        "user2",
        "flags",
    ]


async def test_expansion_collision_is_an_error(
    serve_config: Callable[..., ServeConfig],
    kube_api: KubeAPI,
    signer: Signer,
    world: dict[str, Any],
) -> None:
    objects = """
- {objectName: db, backend: vault, secretPath: secret/data/mixed, jmesPath: db, expand: keys}
- {objectName: port, backend: file, path: conf.json, objectAlias: db/port}
"""
    async with running(serve_config(kube_api_url=kube_api.url)) as stubs:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stubs["csiprovider"].Mount(request(signer, world["bao"], objects))
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "file name collision: db/port" in (info.value.details() or "")

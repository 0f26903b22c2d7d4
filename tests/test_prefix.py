"""Prefix fetch: a file directory, a Vault KV path, an SSM path — each item a file,
bounded by maxItems."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import grpc
import pytest

from csiprovider.server import ServeConfig
from testkit.daemon import running
from testkit.requests import mount_request
from testkit.servers import KubeAPI, OpenBao, Signer


def files(reply: Any) -> dict[str, bytes]:
    return {f.path: f.contents for f in reply.files}


async def test_file_prefix_and_limit(stub: Any, file_root: Path) -> None:
    reply = await stub.Mount(
        mount_request([{"objectName": "db", "backend": "file", "prefix": "db/"}])
    )
    assert files(reply) == {"db/password": b"pw-0123456789", "db/username": b"app_user"}
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Mount(
            mount_request([{"objectName": "db", "backend": "file", "prefix": "db", "maxItems": 1}])
        )
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "2 files under prefix 'db', more than maxItems 1" in (info.value.details() or "")


async def test_vault_and_ssm_prefixes(
    serve_config: Callable[..., ServeConfig],
    openbao: OpenBao,
    moto: str,
    kube_api: KubeAPI,
    signer: Signer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto)
    kube_api.service_accounts[("default", "app")] = {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/app"
    }
    for key, value in (("alpha", "1"), ("beta", "2"), ("gamma", "3")):
        openbao.api("POST", f"secret/data/prefixed/{key}", {"data": {"v": value}})
    openbao.api("POST", "kv1/prefixed/one", {"v": "kv1"})
    ssm = boto3.client(
        "ssm",
        endpoint_url=moto,
        region_name="us-east-1",
        aws_access_key_id="a",
        aws_secret_access_key="b",
    )
    for name in ("/svc/a", "/svc/nested/b"):
        ssm.put_parameter(Name=name, Value=name[-1], Type="String", Overwrite=True)
    tokens = {
        aud: {"token": signer.token("default", "app", [aud]), "expirationTimestamp": ""}
        for aud in ("vault", "sts.amazonaws.com")
    }
    objects = """
- {objectName: kv, backend: vault, prefix: secret/prefixed/, secretKey: v}
- {objectName: kv1, backend: vault, prefix: kv1/prefixed, kvVersion: 1}
- {objectName: params, backend: aws-ssm, pathPrefix: /svc}
"""
    req = mount_request(
        objects,
        extra={
            "vaultAddress": openbao.addr,
            "roleName": "app",
            "region": "us-east-1",
            "csi.storage.k8s.io/serviceAccount.tokens": json.dumps(tokens),
        },
    )
    async with running(serve_config(kube_api_url=kube_api.url)) as stubs:
        reply = await stubs["csiprovider"].Mount(req)
        attrs = {k: v for k, v in json.loads(req.attributes).items() if k != "objects"}
        limited = mount_request(
            "- {objectName: kv, backend: vault, prefix: secret/prefixed/, maxItems: 2}", extra=attrs
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stubs["csiprovider"].Mount(limited)
    assert files(reply) == {
        "kv/alpha": b"1",
        "kv/beta": b"2",
        "kv/gamma": b"3",
        "kv1/one": b'{"v":"kv1"}',
        "params/a": b"a",
        "params/nested/b": b"b",
    }
    assert "3 secrets under the prefix, more than maxItems 2" in (info.value.details() or "")

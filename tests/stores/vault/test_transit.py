"""`backend: vault-transit`: a ciphertext committed in the SPC, decrypted by OpenBao's
transit engine with the pod's own Vault login; `csiprovider encrypt --vault-transit`
prints the object to paste."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
import yaml

from csiprovider.server import ServeConfig
from testkit.daemon import running
from testkit.servers import OpenBao, Signer
from tests.stores.vault.test_backend import request

SECRET = b"transit-plaintext-\x00\xff-Q7"


@pytest.fixture(scope="module")
def transit(openbao: OpenBao) -> OpenBao:
    mounts = openbao.api("GET", "sys/mounts") or {}
    if "transit/" not in (mounts.get("data") or mounts):
        openbao.api("POST", "sys/mounts/transit", {"type": "transit"})
        openbao.api("POST", "transit/keys/app", {})
        openbao.api("POST", "transit/keys/derived", {"derived": True})
        openbao.api("POST", "transit/keys/forbidden", {})
        policy = openbao.api("GET", "sys/policies/acl/app")["data"]["policy"]
        policy += (
            'path "transit/decrypt/app" { capabilities = ["update"] }\n'
            'path "transit/decrypt/derived" { capabilities = ["update"] }\n'
        )
        openbao.api("PUT", "sys/policies/acl/app", {"policy": policy})
    return openbao


@pytest.fixture
async def vault(serve_config: Callable[..., ServeConfig]) -> AsyncIterator[Any]:
    async with running(serve_config()) as stubs:
        yield stubs["csiprovider"]


def encrypt(bao: OpenBao, key: str, context: str = "") -> str:
    body = {"plaintext": base64.b64encode(SECRET).decode()}
    if context:
        body["context"] = base64.b64encode(context.encode()).decode()
    return str(bao.api("POST", f"transit/encrypt/{key}", body)["data"]["ciphertext"])


def files(reply: Any) -> dict[str, bytes]:
    return {f.path: f.contents for f in reply.files}


async def test_ciphertext_in_the_spc_is_decrypted_with_the_pods_login(
    vault: Any, transit: OpenBao, signer: Signer
) -> None:
    objects = [
        {
            "objectName": "plain",
            "backend": "vault-transit",
            "key": "app",
            "ciphertext": encrypt(transit, "app"),
        },
        {
            "objectName": "derived",
            "backend": "vault-transit",
            "key": "derived",
            "context": "team-a",
            "ciphertext": encrypt(transit, "derived", "team-a"),
        },
    ]
    reply = await vault.Mount(request(transit, signer, yaml.safe_dump(objects)))
    assert files(reply) == {"plain": SECRET, "derived": SECRET}


async def test_a_key_the_pod_may_not_use_is_refused_with_vaults_words(
    vault: Any, transit: OpenBao, signer: Signer
) -> None:
    objects = [
        {
            "objectName": "x",
            "backend": "vault-transit",
            "key": "forbidden",
            "ciphertext": encrypt(transit, "forbidden"),
        }
    ]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await vault.Mount(request(transit, signer, yaml.safe_dump(objects)))
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "permission denied" in (info.value.details() or "")
    assert SECRET.decode(errors="replace") not in (info.value.details() or "")


async def test_encrypt_prints_the_object_to_paste(
    vault: Any, transit: OpenBao, signer: Signer
) -> None:
    env = {**os.environ, "VAULT_ADDR": transit.addr, "VAULT_TOKEN": transit.token}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "csiprovider",
            "encrypt",
            "--vault-transit",
            "app",
            "--object-name",
            "db-password",
        ],
        input=SECRET,
        capture_output=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    (entry,) = yaml.safe_load(out.stdout)
    assert entry["backend"] == "vault-transit" and entry["ciphertext"].startswith("vault:v1:")
    assert SECRET not in out.stdout
    reply = await vault.Mount(request(transit, signer, yaml.safe_dump([entry])))
    assert files(reply) == {"db-password": SECRET}


def test_a_ciphertext_that_is_not_transits_is_an_spc_error() -> None:
    from csiprovider.errors import InvalidArgument
    from csiprovider.native.dialect import parse
    from csiprovider.request import parse_mount_request
    from testkit.requests import mount_request

    with pytest.raises(InvalidArgument, match="vault:v1"):
        parse(
            parse_mount_request(
                mount_request(
                    [
                        {
                            "objectName": "x",
                            "backend": "vault-transit",
                            "key": "k",
                            "ciphertext": "AQID",
                        }
                    ],
                    extra={"roleName": "app"},
                )
            )
        )

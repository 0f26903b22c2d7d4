"""TLS settings of the vault dialect against a real OpenBao serving HTTPS."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from csiprovider.server import ServeConfig
from tests.conftest import running
from tests.servers import KubeAPI, OpenBao, Signer, configure_openbao, openbao_server
from tests.test_vault_backend import USER, files, request


@pytest.fixture(scope="module")
def tls_bao(tmp_path_factory: pytest.TempPathFactory, signer: Signer,
            kube_api: KubeAPI) -> Iterator[OpenBao]:
    with openbao_server(tmp_path_factory.mktemp("tlsbao"), tls=True) as bao:
        configure_openbao(bao, signer, kube_api)
        bao.api("POST", "secret/data/app", {"data": {"user": "tls-user"}})
        yield bao


@pytest.fixture
async def vault(serve_config: Callable[..., ServeConfig]) -> AsyncIterator[Any]:
    async with running(serve_config(names=["vault"], mount_timeout=3)) as stubs:
        yield stubs["vault"]


async def mount(vault: Any, bao: OpenBao, signer: Signer, **params: str) -> Any:
    return await vault.Mount(request(bao, signer, USER, vaultAuthMountPath="jwt", **params))


async def test_ca_file(vault: Any, tls_bao: OpenBao, signer: Signer) -> None:
    reply = await mount(vault, tls_bao, signer, vaultCACertPath=tls_bao.ca)
    assert files(reply) == {"u": b"tls-user"}


async def test_ca_directory(vault: Any, tls_bao: OpenBao, signer: Signer, tmp_path: Path) -> None:
    digest = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", tls_bao.ca],
                            capture_output=True, text=True, check=True).stdout.strip()
    shutil.copy(tls_bao.ca, tmp_path / f"{digest}.0")
    reply = await mount(vault, tls_bao, signer, vaultCADirectory=str(tmp_path))
    assert files(reply) == {"u": b"tls-user"}


async def test_unknown_ca_fails_and_skip_verify_passes(vault: Any, tls_bao: OpenBao,
                                                       signer: Signer) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await mount(vault, tls_bao, signer)
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "SSLError" in (info.value.details() or "")
    reply = await mount(vault, tls_bao, signer, vaultSkipTLSVerify="true")
    assert files(reply) == {"u": b"tls-user"}


async def test_server_name_is_checked(vault: Any, tls_bao: OpenBao, signer: Signer) -> None:
    reply = await mount(vault, tls_bao, signer, vaultCACertPath=tls_bao.ca,
                        vaultTLSServerName="localhost")
    assert files(reply) == {"u": b"tls-user"}
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await mount(vault, tls_bao, signer, vaultCACertPath=tls_bao.ca,
                    vaultTLSServerName="wrong.example.com")
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_client_cert_needs_its_key(vault: Any, tls_bao: OpenBao, signer: Signer) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await mount(vault, tls_bao, signer, vaultCACertPath=tls_bao.ca,
                    vaultTLSClientCertPath="/etc/ssl/client.pem")
    assert info.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "both client cert and client key must be provided" in (info.value.details() or "")

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
from testkit.daemon import running
from testkit.servers import KubeAPI, OpenBao, Signer, configure_openbao, openbao_server
from tests.stores.vault.test_backend import USER, files, request

pytestmark = pytest.mark.openbao


@pytest.fixture(scope="module")
def tls_bao(
    tmp_path_factory: pytest.TempPathFactory, signer: Signer, kube_api: KubeAPI
) -> Iterator[OpenBao]:
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
    digest = subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", tls_bao.ca],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    shutil.copy(tls_bao.ca, tmp_path / f"{digest}.0")
    reply = await mount(vault, tls_bao, signer, vaultCADirectory=str(tmp_path))
    assert files(reply) == {"u": b"tls-user"}


async def test_unknown_ca_fails_and_skip_verify_passes(
    vault: Any, tls_bao: OpenBao, signer: Signer
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await mount(vault, tls_bao, signer)
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "SSLError" in (info.value.details() or "")
    reply = await mount(vault, tls_bao, signer, vaultSkipTLSVerify="true")
    assert files(reply) == {"u": b"tls-user"}


async def test_server_name_is_checked(vault: Any, tls_bao: OpenBao, signer: Signer) -> None:
    reply = await mount(
        vault, tls_bao, signer, vaultCACertPath=tls_bao.ca, vaultTLSServerName="localhost"
    )
    assert files(reply) == {"u": b"tls-user"}
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await mount(
            vault,
            tls_bao,
            signer,
            vaultCACertPath=tls_bao.ca,
            vaultTLSServerName="wrong.example.com",
        )
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_client_cert_needs_its_key(vault: Any, tls_bao: OpenBao, signer: Signer) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await mount(
            vault,
            tls_bao,
            signer,
            vaultCACertPath=tls_bao.ca,
            vaultTLSClientCertPath="/etc/ssl/client.pem",
        )
    assert info.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "both client cert and client key must be provided" in (info.value.details() or "")


def _pki(tmp: Path) -> dict[str, str]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def build(
        subject: str,
        key: Any,
        issuer: str,
        issuer_key: Any,
        ca: bool,
        usage: Any = None,
        ip: bool = False,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name(issuer))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if usage is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if ip:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    certs = {
        "ca": build("test-ca", ca_key, "test-ca", ca_key, True),
        "server": build(
            "vault", server_key, "test-ca", ca_key, False, ExtendedKeyUsageOID.SERVER_AUTH, ip=True
        ),
        "client": build(
            "provider", client_key, "test-ca", ca_key, False, ExtendedKeyUsageOID.CLIENT_AUTH
        ),
    }
    paths = {}
    for label, cert in certs.items():
        paths[f"{label}.crt"] = str(tmp / f"{label}.crt")
        (tmp / f"{label}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    for label, key in (("server", server_key), ("client", client_key)):
        paths[f"{label}.key"] = str(tmp / f"{label}.key")
        (tmp / f"{label}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return paths


async def test_mutual_tls_client_certificate(
    vault: Any, tmp_path_factory: pytest.TempPathFactory, signer: Signer, kube_api: KubeAPI
) -> None:
    from testkit.servers import free_port

    work = tmp_path_factory.mktemp("mtls")
    pki = _pki(work)
    port = free_port()
    listener = (
        f'listener "tcp" {{\n  address = "127.0.0.1:{port}"\n'
        f'  tls_cert_file = "{pki["server.crt"]}"\n'
        f'  tls_key_file = "{pki["server.key"]}"\n'
        f'  tls_client_ca_file = "{pki["ca.crt"]}"\n'
        "  tls_require_and_verify_client_cert = true\n}\n"
    )
    with openbao_server(work, extra_hcl=listener) as bao:
        configure_openbao(bao, signer, kube_api)
        bao.api("POST", "secret/data/app", {"data": {"user": "mtls-user"}})
        mtls = OpenBao(f"https://127.0.0.1:{port}", bao.token, bao.audit_log, bao.proc)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await mount(vault, mtls, signer, vaultCACertPath=pki["ca.crt"])
        assert info.value.code() is grpc.StatusCode.UNAVAILABLE  # no client certificate
        reply = await mount(
            vault,
            mtls,
            signer,
            vaultCACertPath=pki["ca.crt"],
            vaultTLSClientCertPath=pki["client.crt"],
            vaultTLSClientKeyPath=pki["client.key"],
        )
    assert files(reply) == {"u": b"mtls-user"}

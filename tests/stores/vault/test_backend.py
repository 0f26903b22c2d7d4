"""The vault dialect against a real OpenBao dev server (and PostgreSQL for dynamic
secrets), through the real gRPC server on a Unix socket."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from prometheus_client import REGISTRY

from csiprovider.server import ServeConfig
from testkit.daemon import running
from testkit.requests import mount_request
from testkit.servers import GUARD, Gate, OpenBao, Postgres, Signer

POD_UID = "6f1c3f0e-1111-2222-3333-444455556666"


@pytest.fixture
async def vault(serve_config: Callable[..., ServeConfig]) -> AsyncIterator[Any]:
    async with running(serve_config(names=["vault"])) as stubs:
        yield stubs["vault"]


def request(
    bao: OpenBao,
    signer: Signer,
    objects: str,
    *,
    role: str = "app",
    sa: str = "app",
    namespace: str = "default",
    audience: str = "vault",
    **params: str,
) -> Any:
    token = signer.token(namespace, sa, [audience], pod="app-0", pod_uid=POD_UID)
    extra = {
        "roleName": role,
        "vaultAddress": bao.addr,
        **params,
        "csi.storage.k8s.io/serviceAccount.name": sa,
        "csi.storage.k8s.io/serviceAccount.tokens": json.dumps(
            {audience: {"token": token, "expirationTimestamp": "2030-01-01T00:00:00Z"}}
        ),
    }
    return mount_request(objects, namespace=namespace, extra=extra)


def files(reply: Any) -> dict[str, bytes]:
    return {f.path: f.contents for f in reply.files}


@pytest.fixture(scope="module")
def kv(openbao: OpenBao) -> OpenBao:
    openbao.api(
        "POST",
        "secret/data/app",
        {
            "data": {
                "user": "app_user",
                "password": "p@ss<&>",
                "port": 5432,
                "nested": {"k": [1, "x"]},
            }
        },
    )
    openbao.api("POST", "kv1/app", {"user": "v1-user", "ratio": 1.50})
    return openbao


async def test_kv2_and_kv1_keys_and_encodings(vault: Any, kv: OpenBao, signer: Signer) -> None:
    kv.api(
        "POST",
        "secret/data/encoded",
        {"data": {"b64": base64.b64encode(b"\x00bin").decode(), "hex": "cafe"}},
    )
    reply = await vault.Mount(
        request(
            kv,
            signer,
            """
- {objectName: password, secretPath: secret/data/app, secretKey: password}
- {objectName: port, secretPath: secret/data/app, secretKey: port}
- {objectName: nested, secretPath: secret/data/app, secretKey: nested, filePermission: 0600}
- {objectName: v1user, secretPath: /v1/kv1/app, secretKey: user}
- {objectName: b64, secretPath: secret/data/encoded, secretKey: b64, encoding: base64}
- {objectName: hex, secretPath: secret/data/encoded, secretKey: hex, encoding: hex}
""",
        )
    )
    assert files(reply) == {
        "password": b"p@ss<&>",
        "port": b"5432",
        "nested": b'{"k":[1,"x"]}',
        "v1user": b"v1-user",
        "b64": b"\x00bin",
        "hex": b"\xca\xfe",
    }
    assert {f.path: f.mode for f in reply.files}["nested"] == 0o600
    assert [v.id for v in reply.object_version] == [
        "password",
        "port",
        "nested",
        "v1user",
        "b64",
        "hex",
    ]


async def test_whole_envelope_is_byte_compatible(vault: Any, kv: OpenBao, signer: Signer) -> None:
    reply = await vault.Mount(request(kv, signer, "- {objectName: all, secretPath: kv1/app}"))
    text = files(reply)["all"].decode()
    request_id = json.loads(text)["request_id"]
    assert text == (
        f'{{"request_id":"{request_id}","lease_id":"","lease_duration":2764800,'
        '"renewable":false,"data":{"ratio":1.5,"user":"v1-user"},"warnings":null}'
    )


async def test_missing_key_and_path_errors(vault: Any, kv: OpenBao, signer: Signer) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await vault.Mount(
            request(kv, signer, "- {objectName: x, secretPath: secret/data/app, secretKey: nope}")
        )
    assert info.value.code() is grpc.StatusCode.NOT_FOUND
    assert info.value.details() == (
        'couldn\'t read secret "x": {/v1/secret/data/app}: '
        '{key "nope" does not exist at the secret path}'
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await vault.Mount(
            request(kv, signer, "- {objectName: x, secretPath: secret/data/none, secretKey: a}")
        )
    assert info.value.code() is grpc.StatusCode.NOT_FOUND
    assert (
        f'couldn\'t read secret "x": error requesting secret: Error making API request. '
        f"URL: GET {kv.addr}/v1/secret/data/none Code: 404."
    ) in (info.value.details() or "")


async def test_query_version(vault: Any, openbao: OpenBao, signer: Signer) -> None:
    openbao.api("POST", "secret/data/versioned", {"data": {"v": "one"}})
    openbao.api("POST", "secret/data/versioned", {"data": {"v": "two"}})
    reply = await vault.Mount(
        request(
            openbao,
            signer,
            """
- {objectName: old, secretPath: 'secret/data/versioned?version=1', secretKey: v}
- {objectName: new, secretPath: secret/data/versioned, secretKey: v}
""",
        )
    )
    assert files(reply) == {"old": b"one", "new": b"two"}


async def test_whole_data_files_and_jmespath(vault: Any, kv: OpenBao, signer: Signer) -> None:
    reply = await vault.Mount(
        request(
            kv,
            signer,
            """
- {objectName: data.json, secretPath: secret/data/app, secretFormat: data}
- {objectName: app, secretPath: secret/data/app, secretFormat: files}
- {objectName: deep, secretPath: secret/data/app, jmesPath: 'nested.k[1]'}
""",
        )
    )
    got = files(reply)
    assert json.loads(got["data.json"]) == {
        "user": "app_user",
        "password": "p@ss<&>",
        "port": 5432,
        "nested": {"k": [1, "x"]},
    }
    assert b"\\u003c" in got["data.json"]  # Go escaping, as vault-csi-provider would write it
    assert got["app/user"] == b"app_user" and got["app/port"] == b"5432"
    assert got["deep"] == b"x"
    assert [v.id for v in reply.object_version] == ["data.json", "app", "deep"]


def cert_cn(pem: str) -> str:
    cert = x509.load_pem_x509_certificate(pem.encode())
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


async def test_pki_put_with_args_dedups_by_args(
    vault: Any, openbao: OpenBao, signer: Signer
) -> None:
    before = openbao.requests_to("pki/issue/example-dot-com")
    reply = await vault.Mount(
        request(
            openbao,
            signer,
            """
- {objectName: a, secretPath: pki/issue/example-dot-com, method: PUT, secretArgs: {common_name: a.example.com, ttl: 1h}}
- {objectName: b, secretPath: pki/issue/example-dot-com, method: PUT, secretArgs: {common_name: b.example.com, ttl: 1h}}
- {objectName: a-key, secretPath: pki/issue/example-dot-com, method: PUT, secretKey: private_key, secretArgs: {common_name: a.example.com, ttl: 1h}}
""",
        )
    )
    got = files(reply)
    a, b = json.loads(got["a"]), json.loads(got["b"])
    assert cert_cn(a["data"]["certificate"]) == "a.example.com"
    assert cert_cn(b["data"]["certificate"]) == "b.example.com"
    x509.load_pem_x509_certificate(a["data"]["issuing_ca"].encode())
    assert got["a-key"].decode() == a["data"]["private_key"]  # same issue call, matching key
    assert openbao.requests_to("pki/issue/example-dot-com") - before == 2


async def test_certificate_reused_across_mounts(
    vault: Any, openbao: OpenBao, signer: Signer
) -> None:
    objects = (
        "- {objectName: c, secretPath: pki/issue/example-dot-com, method: PUT, "
        "secretKey: certificate, secretArgs: {common_name: reuse.example.com, ttl: 1h}}"
    )
    before = openbao.requests_to("pki/issue/example-dot-com")
    first = await vault.Mount(request(openbao, signer, objects))
    again = await vault.Mount(request(openbao, signer, objects))
    assert files(first) == files(again)
    assert list(first.object_version) == list(again.object_version)
    assert openbao.requests_to("pki/issue/example-dot-com") - before == 1


async def test_database_pair_from_one_read_logs_in(
    vault: Any, openbao_db: OpenBao, postgres: Postgres, signer: Signer
) -> None:
    objects = """
- {objectName: dbUsername, secretPath: database/creds/app, secretKey: username}
- {objectName: dbPassword, secretPath: database/creds/app, secretKey: password}
"""
    before = openbao_db.requests_to("database/creds/app")
    reply = await vault.Mount(request(openbao_db, signer, objects))
    got = files(reply)
    user = got["dbUsername"].decode()
    assert postgres.can_login(user, got["dbPassword"].decode()) == user
    assert openbao_db.requests_to("database/creds/app") - before == 1
    # kubelet republishes: the same lease is handed out again, no new database user.
    again = await vault.Mount(request(openbao_db, signer, objects))
    assert files(again) == got
    assert openbao_db.requests_to("database/creds/app") - before == 1


async def test_lease_renewed_past_renewal_point(
    serve_config: Callable[..., ServeConfig],
    openbao_db: OpenBao,
    postgres: Postgres,
    signer: Signer,
) -> None:
    objects = (
        "- {objectName: u, secretPath: database/creds/app, secretKey: username}\n"
        "- {objectName: p, secretPath: database/creds/app, secretKey: password}"
    )
    async with running(serve_config(names=["vault"], renew_fraction=0.0)) as stubs:
        before_read = openbao_db.requests_to("database/creds/app")
        before_renew = openbao_db.requests_to("sys/leases/renew")
        first = files(await stubs["vault"].Mount(request(openbao_db, signer, objects)))
        second = files(await stubs["vault"].Mount(request(openbao_db, signer, objects)))
    assert first == second  # renewed, not re-issued
    assert openbao_db.requests_to("database/creds/app") - before_read == 1
    assert openbao_db.requests_to("sys/leases/renew") - before_renew == 1
    assert postgres.can_login(second["u"].decode(), second["p"].decode())


async def test_jwt_auth_mount(vault: Any, kv: OpenBao, signer: Signer) -> None:
    reply = await vault.Mount(
        request(
            kv,
            signer,
            "- {objectName: u, secretPath: secret/data/app, secretKey: user}",
            vaultAuthMountPath="jwt",
        )
    )
    assert files(reply) == {"u": b"app_user"}


async def test_wrong_service_account_gets_vaults_error(
    vault: Any, kv: OpenBao, signer: Signer
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await vault.Mount(
            request(
                kv,
                signer,
                "- {objectName: u, secretPath: secret/data/app, secretKey: user}",
                sa="intruder",
            )
        )
    assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED
    details = info.value.details() or ""
    assert details.startswith(
        "failed to login: Error making API request. URL: POST "
        f"{kv.addr}/v1/auth/kubernetes/login Code: 403."
    )
    assert "service account name not authorized" in details


async def test_token_reused_and_relogin_on_403(vault: Any, kv: OpenBao, signer: Signer) -> None:
    objects = "- {objectName: u, secretPath: secret/data/app, secretKey: user}"
    logins = kv.requests_to("auth/kubernetes/login")
    for _ in range(3):
        await vault.Mount(request(kv, signer, objects))
    assert kv.requests_to("auth/kubernetes/login") - logins == 1
    kv.api("PUT", "sys/leases/revoke-prefix/auth/kubernetes/login")  # Vault forgets the token
    reply = await vault.Mount(request(kv, signer, objects))
    assert files(reply) == {"u": b"app_user"}
    assert kv.requests_to("auth/kubernetes/login") - logins == 2


async def test_daemon_environment_token_is_never_used(
    serve_config: Callable[..., ServeConfig],
    kv: OpenBao,
    signer: Signer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # An operator's VAULT_TOKEN or ~/.vault-token must not leak into pod reads.
    monkeypatch.setenv("VAULT_TOKEN", kv.token)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".vault-token").write_text(kv.token)
    async with running(serve_config(names=["vault"])) as stubs:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stubs["vault"].Mount(
                request(kv, signer, "- {objectName: m, secretPath: sys/mounts}")
            )
    assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "permission denied" in (info.value.details() or "")


@pytest.fixture
def proxy(kv: OpenBao) -> Any:
    from testkit.servers import start_vault_proxy

    p = start_vault_proxy(kv.addr)
    yield p
    p.server.shutdown()


USER = "- {objectName: u, secretPath: secret/data/app, secretKey: user}"


async def test_transient_errors_are_retried(
    vault: Any, kv: OpenBao, proxy: Any, signer: Signer
) -> None:
    proxy.faults["/v1/secret/data/app"] = [503, 502]
    reply = await vault.Mount(request(kv, signer, USER, vaultAddress=proxy.url))
    assert files(reply) == {"u": b"app_user"}
    assert proxy.faults["/v1/secret/data/app"] == []  # both faults were met, then success


async def test_persistent_outage_names_object_path_and_cause(
    serve_config: Callable[..., ServeConfig], kv: OpenBao, proxy: Any, signer: Signer
) -> None:
    """Retries until the Mount deadline, then the last failure. The pod logs in before
    the outage (reading another secret: no last good value of this one to serve), so the
    short deadline is spent on the reads alone: a login slowed by a busy machine cannot
    use it up and change the answer."""
    login = "- {objectName: v1, secretPath: kv1/app, secretKey: user}"
    async with running(serve_config(names=["vault"], mount_timeout=1.5)) as stubs:
        await stubs["vault"].Mount(request(kv, signer, login, vaultAddress=proxy.url))
        proxy.faults["/v1/secret/data/app"] = [503] * 100
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stubs["vault"].Mount(request(kv, signer, USER, vaultAddress=proxy.url))
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    assert info.value.details() == (
        'couldn\'t read secret "u": error requesting secret: Error making API request. '
        f"URL: GET {proxy.url}/v1/secret/data/app Code: 503. Errors: * injected fault"
    )


async def test_vault_unreachable_is_unavailable(
    serve_config: Callable[..., ServeConfig], kv: OpenBao, signer: Signer
) -> None:
    from testkit.servers import free_port

    down = f"http://127.0.0.1:{free_port()}"
    async with running(serve_config(names=["vault"], mount_timeout=1.0)) as stubs:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stubs["vault"].Mount(request(kv, signer, USER, vaultAddress=down))
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    assert f"failed to login: cannot reach Vault at {down}/v1/auth/kubernetes/login" in (
        info.value.details() or ""
    )


async def test_login_reply_without_auth_is_an_error_not_a_crash(
    vault: Any, kv: OpenBao, proxy: Any, signer: Signer
) -> None:
    proxy.canned["/v1/auth/kubernetes/login"] = (200, b'{"data": {}, "warnings": null}')
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await vault.Mount(request(kv, signer, USER, vaultAddress=proxy.url))
    assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "has no auth block" in (info.value.details() or "")
    del proxy.canned["/v1/auth/kubernetes/login"]
    reply = await vault.Mount(request(kv, signer, USER, vaultAddress=proxy.url))
    assert files(reply) == {"u": b"app_user"}  # the daemon is still serving


async def test_objects_are_fetched_in_parallel(vault: Any, kv: OpenBao, signer: Signer) -> None:
    """The three reads of one Mount are in flight together: the gate lets them through
    only once all three wait in it. Read one after another, the first would wait for the
    others until the Mount's deadline, and the Mount would fail."""
    kv.api("POST", "secret/data/p1", {"data": {"k": "1"}})
    kv.api("POST", "secret/data/p2", {"data": {"k": "2"}})
    kv.api("POST", "secret/data/p3", {"data": {"k": "3"}})
    with Gate(kv.addr, [f"/v1/secret/data/p{i}" for i in (1, 2, 3)], parties=3) as gate:
        reply = await vault.Mount(
            request(
                kv,
                signer,
                "".join(
                    f"- {{objectName: s{i}, secretPath: secret/data/p{i}, secretKey: k}}\n"
                    for i in (1, 2, 3)
                ),
                vaultAddress=gate.url,
            )
        )
    assert files(reply) == {"s1": b"1", "s2": b"2", "s3": b"3"}
    assert not gate.timed_out
    assert gate.max_in_flight == 3


async def test_unix_socket_address(vault: Any, kv: OpenBao, signer: Signer, tmp_path: Path) -> None:
    from testkit.servers import start_vault_proxy

    agent = start_vault_proxy(kv.addr, unix_path=tmp_path / "agent.sock")
    try:
        reply = await vault.Mount(request(kv, signer, USER, vaultAddress=agent.url))
    finally:
        agent.server.shutdown()
    assert files(reply) == {"u": b"app_user"}


async def test_token_renewed_instead_of_new_login(
    serve_config: Callable[..., ServeConfig], kv: OpenBao, signer: Signer
) -> None:
    logins = kv.requests_to("auth/kubernetes/login")
    renewals = kv.requests_to("auth/token/renew-self")
    async with running(serve_config(names=["vault"], renew_fraction=0.0)) as stubs:
        for _ in range(3):
            assert files(await stubs["vault"].Mount(request(kv, signer, USER))) == {
                "u": b"app_user"
            }
    assert kv.requests_to("auth/kubernetes/login") - logins == 1
    assert kv.requests_to("auth/token/renew-self") - renewals == 2


async def test_token_request_when_driver_sent_no_token_for_audience(
    serve_config: Callable[..., ServeConfig], kv: OpenBao, signer: Signer, kube_api: Any
) -> None:
    before = kube_api.count("POST", "/serviceaccounts/app/token")
    config = serve_config(names=["vault"], kube_api_url=kube_api.url)
    async with running(config) as stubs:
        # The driver only issued a `vault` token; the SPC wants `custom-audience`.
        req = request(kv, signer, USER, role="custom-aud", audience="vault")
        params = dict(json.loads(req.attributes), audience="custom-audience")
        req.attributes = json.dumps(params)
        for _ in range(2):
            assert files(await stubs["vault"].Mount(req)) == {"u": b"app_user"}
    assert (
        kube_api.count("POST", "/api/v1/namespaces/default/serviceaccounts/app/token") - before == 1
    )  # the Vault token is cached: one TokenRequest, one login


async def test_no_token_and_no_kubernetes_api_is_a_clear_error(
    vault: Any, kv: OpenBao, signer: Signer
) -> None:
    req = request(kv, signer, USER, audience="vault")
    params = dict(json.loads(req.attributes), audience="other")
    req.attributes = json.dumps(params)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await vault.Mount(req)
    assert info.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "add the audience to the CSIDriver's tokenRequests" in (info.value.details() or "")


async def test_republishes_share_reads_new_pods_read_and_log_in_themselves(
    serve_config: Callable[..., ServeConfig], kv: OpenBao, proxy: Any, signer: Signer
) -> None:
    kv.api("POST", "secret/data/shared", {"data": {"k": "v"}})
    objects = "- {objectName: k, secretPath: secret/data/shared, secretKey: k}"
    before = kv.requests_to("secret/data/shared")
    logins = kv.requests_to("auth/kubernetes/login")

    def pod(uid: str, req: Any = None) -> Any:
        req = req or request(kv, signer, objects)
        attrs = json.loads(req.attributes)
        attrs["csi.storage.k8s.io/pod.uid"] = uid
        req.attributes = json.dumps(attrs)
        return req

    async with running(serve_config(names=["vault"], cache_ttl=60.0)) as stubs:
        stub = stubs["vault"]
        for uid in ("pod-a", "pod-a", "pod-b", "pod-c"):  # a republish, then new replicas
            assert files(await stub.Mount(pod(uid))) == {"k": b"v"}
        # Each new pod logged in and read for itself; pod-a's republish was served.
        assert kv.requests_to("secret/data/shared") - before == 3
        assert kv.requests_to("auth/kubernetes/login") - logins == 3
        for uid in ("pod-a", "pod-b", "pod-c"):  # kubelet's republish round
            assert files(await stub.Mount(pod(uid))) == {"k": b"v"}
        assert kv.requests_to("secret/data/shared") - before == 3
        assert kv.requests_to("auth/kubernetes/login") - logins == 3
        # Another role is another class: never served from the first one's reads.
        other = request(kv, signer, objects, role="custom-aud", audience="custom-audience")
        attrs = json.loads(other.attributes)
        attrs["audience"] = "custom-audience"
        other.attributes = json.dumps(attrs)
        assert files(await stub.Mount(pod("pod-a", other))) == {"k": b"v"}
        assert files(await stub.Mount(pod("pod-a", other))) == {"k": b"v"}
        assert kv.requests_to("secret/data/shared") - before == 4


def coalesced() -> float:
    """Reads the daemon joined in flight instead of starting them (its own count)."""
    return REGISTRY.get_sample_value("csiprovider_cache_total", {"outcome": "coalesced"}) or 0


async def test_concurrent_identical_mounts_coalesce(
    serve_config: Callable[..., ServeConfig], kv: OpenBao, signer: Signer
) -> None:
    """Five republishes at once, no cache: one read, the other four join it. The gate
    holds that read until the daemon has counted the four joins, so all five are
    surely in flight together, however slowly they arrive."""
    import asyncio

    kv.api("POST", "secret/data/coalesce", {"data": {"k": "v"}})
    objects = "- {objectName: k, secretPath: secret/data/coalesce, secretKey: k}"
    async with running(serve_config(names=["vault"], cache_ttl=0.0)) as stubs:
        stub = stubs["vault"]
        with Gate(kv.addr, ["/v1/secret/data/coalesce"]) as gate:
            await stub.Mount(request(kv, signer, USER, vaultAddress=gate.url))  # log in
            before, joined = kv.requests_to("secret/data/coalesce"), coalesced()
            req = request(kv, signer, objects, vaultAddress=gate.url)
            mounts = asyncio.gather(*(stub.Mount(req) for _ in range(5)))
            guard = asyncio.get_running_loop().time() + GUARD
            while coalesced() - joined < 4 and not mounts.done():  # done: failed
                assert asyncio.get_running_loop().time() < guard, coalesced() - joined
                await asyncio.sleep(0.01)
            gate.open()
            replies = await mounts
    assert all(files(r) == {"k": b"v"} for r in replies)
    assert coalesced() - joined == 4
    assert gate.seen["/v1/secret/data/coalesce"] == 1
    assert kv.requests_to("secret/data/coalesce") - before == 1


async def test_certificate_reissued_past_renewal_point(
    serve_config: Callable[..., ServeConfig], openbao: OpenBao, signer: Signer
) -> None:
    objects = (
        "- {objectName: c, secretPath: pki/issue/example-dot-com, method: PUT, "
        "secretKey: serial_number, secretArgs: {common_name: due.example.com, ttl: 1h}}"
    )
    before = openbao.requests_to("pki/issue/example-dot-com")
    async with running(serve_config(names=["vault"], renew_fraction=0.0)) as stubs:
        first = files(await stubs["vault"].Mount(request(openbao, signer, objects)))
        second = files(await stubs["vault"].Mount(request(openbao, signer, objects)))
    assert first["c"] != second["c"]  # certificates cannot be renewed: a new one is issued
    assert openbao.requests_to("pki/issue/example-dot-com") - before == 2


async def test_backend_concurrency_is_limited(
    serve_config: Callable[..., ServeConfig], kv: OpenBao, signer: Signer
) -> None:
    """Six reads, two at a time. The gate lets the reads through in pairs, each once
    both wait in it: the limit is reached whatever the machine's speed, and a third
    read in flight beside a pair would be counted."""
    for i in range(6):
        kv.api("POST", f"secret/data/lim{i}", {"data": {"k": str(i)}})
    objects = "".join(
        f"- {{objectName: s{i}, secretPath: secret/data/lim{i}, secretKey: k}}\n" for i in range(6)
    )
    held = [f"/v1/secret/data/lim{i}" for i in range(6)]
    async with running(serve_config(names=["vault"], backend_concurrency=2)) as stubs:
        with Gate(kv.addr, held, parties=2) as gate:
            await stubs["vault"].Mount(request(kv, signer, USER, vaultAddress=gate.url))
            gate.max_in_flight = 0
            reply = await stubs["vault"].Mount(request(kv, signer, objects, vaultAddress=gate.url))
    assert len(reply.files) == 6
    assert not gate.timed_out
    assert sum(gate.seen[path] for path in held) == 6
    assert gate.max_in_flight == 2

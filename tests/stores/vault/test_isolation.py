"""Tenant isolation against a real OpenBao: every pod logs in with its own token, reads are
shared only between pods Vault authorizes identically, and new pods get current data.

The roles here tell pods of ONE service account apart (bound claims on the pod name,
per-pod entities and metadata): only Vault's reply to each pod's own login can say
whether two pods may share anything.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from csiprovider.server import ServeConfig
from testkit.daemon import running
from testkit.requests import mount_request, pod_volume
from testkit.servers import GUARD, Gate, OpenBao, Postgres, Signer
from testkit.tracker import Rotation, WatchedTracker
from tests.stores.vault.test_backend import request as vault_request

SECRET = "web-0-only-value"


@pytest.fixture(scope="module")
def roles(openbao: OpenBao) -> OpenBao:
    """jwt roles that tell pods of the service account `web` apart."""
    accessor = openbao.api("GET", "sys/auth")["data"]["jwt/"]["accessor"]
    openbao.api("POST", "secret/data/iso/web0", {"data": {"v": SECRET}})
    openbao.api("POST", "secret/data/pods/web-0", {"data": {"v": "pod web-0's own"}})
    openbao.api("POST", "secret/data/pods/web-1", {"data": {"v": "pod web-1's own"}})
    openbao.api(
        "PUT",
        "sys/policies/acl/iso",
        {"policy": 'path "secret/data/iso/*" { capabilities = ["read"] }\n'},
    )
    openbao.api(
        "PUT",
        "sys/policies/acl/per-pod",
        {
            "policy": (
                'path "secret/data/pods/{{identity.entity.aliases.'
                + accessor
                + '.metadata.pod}}" { capabilities = ["read"] }\n'
            )
        },
    )
    common = {
        "role_type": "jwt",
        "bound_audiences": ["vault"],
        "token_ttl": "1h",
        "bound_subject": "system:serviceaccount:team:web",
    }
    # Only the pod named web-0 may log in.
    openbao.api(
        "POST",
        "auth/jwt/role/web0-only",
        {
            **common,
            "user_claim": "sub",
            "token_policies": ["iso"],
            "bound_claims": {"/kubernetes.io/pod/name": "web-0"},
        },
    )
    # One entity per pod (its UID), the pod's name in the alias metadata: a templated
    # policy gives each pod its own path.
    openbao.api(
        "POST",
        "auth/jwt/role/per-pod",
        {
            **common,
            "user_claim": "/kubernetes.io/pod/uid",
            "user_claim_json_pointer": True,
            "claim_mappings": {"/kubernetes.io/pod/name": "pod"},
            "token_policies": ["per-pod"],
        },
    )
    # Same entity (the service account) and policies, but per-pod auth metadata.
    openbao.api(
        "POST",
        "auth/jwt/role/pod-meta",
        {
            **common,
            "user_claim": "sub",
            "token_policies": ["iso"],
            "claim_mappings": {"/kubernetes.io/pod/name": "pod"},
        },
    )
    # Nothing per pod: every pod of the service account is authorized identically.
    openbao.api(
        "POST", "auth/jwt/role/plain", {**common, "user_claim": "sub", "token_policies": ["iso"]}
    )
    return openbao


def pod_request(
    bao: OpenBao,
    signer: Signer,
    objects: str,
    *,
    pod: str,
    role: str,
    token: str | None = None,
    address: str = "",
    target: str = "",
    **params: str,
) -> Any:
    """A Mount of pod `pod` (its UID derives from the name) of service account team/web."""
    if token is None:
        token = signer.token("team", "web", ["vault"], pod=pod, pod_uid=f"uid-{pod}")
    extra = {
        "roleName": role,
        "vaultAddress": address or bao.addr,
        "vaultAuthMountPath": "jwt",
        **params,
        "csi.storage.k8s.io/pod.name": pod,
        "csi.storage.k8s.io/pod.uid": f"uid-{pod}",
        "csi.storage.k8s.io/serviceAccount.name": "web",
        "csi.storage.k8s.io/serviceAccount.tokens": json.dumps(
            {"vault": {"token": token, "expirationTimestamp": "2030-01-01T00:00:00Z"}}
        ),
    }
    return mount_request(
        objects, namespace="team", extra=extra, target_path=target or f"/tmp/unused-target-{pod}"
    )


def files(reply: Any) -> dict[str, bytes]:
    return {f.path: f.contents for f in reply.files}


WEB0 = "- {objectName: v, secretPath: secret/data/iso/web0, secretKey: v}"
LOGIN = "/v1/auth/jwt/login"  # what a Gate holds to start Mounts together


async def refused(stub: Any, req: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Mount(req)
    assert info.value.code() is not grpc.StatusCode.OK
    assert SECRET not in (info.value.details() or "")
    return info.value


@pytest.mark.parametrize("cache_ttl", [60.0, 0.0])
async def test_pod_bound_role_refuses_the_other_pod(
    serve_config: Callable[..., ServeConfig], roles: OpenBao, signer: Signer, cache_ttl: float
) -> None:
    async with running(serve_config(names=["vault"], cache_ttl=cache_ttl)) as stubs:
        stub = stubs["vault"]
        ok = await stub.Mount(pod_request(roles, signer, WEB0, pod="web-0", role="web0-only"))
        assert files(ok) == {"v": SECRET.encode()}
        error = await refused(stub, pod_request(roles, signer, WEB0, pod="web-1", role="web0-only"))
        # Vault's own words, as the pod's events show them.
        assert (error.details() or "").startswith(
            f"failed to login: Error making API request. URL: POST {roles.addr}"
            "/v1/auth/jwt/login Code: 400."
        )
        assert "claim" in (error.details() or "")
        # web-0's republish keeps working.
        again = await stub.Mount(pod_request(roles, signer, WEB0, pod="web-0", role="web0-only"))
        assert files(again) == {"v": SECRET.encode()}


async def test_pod_bound_role_refuses_the_other_pod_mounting_at_the_same_moment(
    serve_config: Callable[..., ServeConfig], roles: OpenBao, signer: Signer
) -> None:
    """Both Mounts are in flight together: the gate lets the logins through only once
    both wait in it."""
    with Gate(roles.addr, [LOGIN], parties=2) as gate:
        async with running(serve_config(names=["vault"], cache_ttl=60.0)) as stubs:
            good, bad = await asyncio.gather(
                *(
                    stubs["vault"].Mount(
                        pod_request(
                            roles, signer, WEB0, pod=pod, role="web0-only", address=gate.url
                        )
                    )
                    for pod in ("web-0", "web-1")
                ),
                return_exceptions=True,
            )
    assert not gate.timed_out and gate.seen[LOGIN] == 2
    assert not isinstance(good, BaseException) and files(good) == {"v": SECRET.encode()}
    assert isinstance(bad, grpc.aio.AioRpcError) and bad.code() is not grpc.StatusCode.OK
    assert SECRET not in (bad.details() or "")


async def test_bad_tokens_are_refused_right_after_a_good_mount(
    serve_config: Callable[..., ServeConfig], roles: OpenBao, signer: Signer
) -> None:
    bad_tokens = {
        "garbage": "not-a-jwt",
        "expired": signer.token(
            "team", "web", ["vault"], pod="web-1", pod_uid="uid-web-1", ttl=-600
        ),
        "foreign key": Signer().token("team", "web", ["vault"], pod="web-1", pod_uid="uid-web-1"),
    }
    async with running(serve_config(names=["vault"], cache_ttl=60.0)) as stubs:
        stub = stubs["vault"]
        for name, token in bad_tokens.items():
            ok = await stub.Mount(pod_request(roles, signer, WEB0, pod="web-0", role="plain"))
            assert files(ok) == {"v": SECRET.encode()}
            logins = roles.requests_to("auth/jwt/login")
            error = await refused(
                stub, pod_request(roles, signer, WEB0, pod="web-1", role="plain", token=token)
            )
            assert "failed to login" in (error.details() or ""), name
            assert roles.requests_to("auth/jwt/login") - logins == 1, name  # its own login


async def test_templated_per_pod_policy_does_not_leak(
    serve_config: Callable[..., ServeConfig], roles: OpenBao, signer: Signer
) -> None:
    theirs = "- {objectName: v, secretPath: secret/data/pods/web-0, secretKey: v}"
    own = "- {objectName: v, secretPath: secret/data/pods/web-1, secretKey: v}"
    async with running(serve_config(names=["vault"], cache_ttl=60.0)) as stubs:
        stub = stubs["vault"]
        ok = await stub.Mount(pod_request(roles, signer, theirs, pod="web-0", role="per-pod"))
        assert files(ok) == {"v": b"pod web-0's own"}
        error = await refused(stub, pod_request(roles, signer, theirs, pod="web-1", role="per-pod"))
        assert error.code() is grpc.StatusCode.PERMISSION_DENIED
        assert "pod web-0's own" not in (error.details() or "")
        mine = await stub.Mount(pod_request(roles, signer, own, pod="web-1", role="per-pod"))
        assert files(mine) == {"v": b"pod web-1's own"}


async def simultaneous_first_mounts(
    config: ServeConfig,
    bao: OpenBao,
    signer: Signer,
    objects: str,
    role: str,
    pods: int,
) -> tuple[list[Any], int, int]:
    """`pods` pods of team/web mount at once; (replies, logins, reads of
    secret/data/iso/*) as OpenBao's audit log counts them.

    At once, on any machine: a gate holds every login until all `pods` of them wait in
    it (so `config` needs that many fetch workers). A pod's login follows its Mount's
    arrival, and every read follows a login, so each read starts after every Mount
    arrived: one that any of them may share. Without the gate, a Mount that a busy
    machine delivers after another pod's read began may not join that read, and reads
    itself (a pod's first Mount gets what the store holds when it arrives).

    A pod outside the count mounts first, past the gate: the first Mount builds the
    Vault backend, and until it is built each object of a Mount asks for the pod's login
    in a fetch worker of its own (waiting there on the pod's login lock): more workers
    than the gate's `pods` logins hold."""
    assert config.fetch_workers >= pods
    paths = [line.split("secretPath: ")[1].split(",")[0] for line in objects.splitlines()]
    async with running(config) as stubs:
        await stubs["vault"].Mount(pod_request(bao, signer, WEB0, pod="web-first", role=role))
        logins = bao.requests_to("auth/jwt/login")
        reads = sum(bao.requests_to(p) for p in paths)
        with Gate(bao.addr, [LOGIN], parties=pods) as gate:
            replies = await asyncio.gather(
                *(
                    stubs["vault"].Mount(
                        pod_request(
                            bao, signer, objects, pod=f"web-{i}", role=role, address=gate.url
                        ),
                        timeout=GUARD,
                    )
                    for i in range(pods)
                )
            )
    assert not gate.timed_out and gate.seen[LOGIN] == pods
    return (
        replies,
        bao.requests_to("auth/jwt/login") - logins,
        sum(bao.requests_to(p) for p in paths) - reads,
    )


async def test_simultaneous_first_mounts_of_one_class_share_reads_each_logs_in(
    serve_config: Callable[..., ServeConfig], roles: OpenBao, signer: Signer
) -> None:
    for i in range(3):
        roles.api("POST", f"secret/data/iso/burst{i}", {"data": {"v": f"b{i}"}})
    objects = "".join(
        f"- {{objectName: b{i}, secretPath: secret/data/iso/burst{i}, secretKey: v}}\n"
        for i in range(3)
    )
    replies, logins, reads = await simultaneous_first_mounts(
        serve_config(names=["vault"], cache_ttl=60.0, fetch_workers=20),
        roles,
        signer,
        objects,
        "plain",
        20,
    )
    assert all(files(r) == {"b0": b"b0", "b1": b"b1", "b2": b"b2"} for r in replies)
    assert logins == 20  # every pod proved itself
    assert reads == 3  # and the reads were shared: Vault authorizes them identically


async def test_pods_with_different_login_metadata_do_not_share_a_read(
    serve_config: Callable[..., ServeConfig], roles: OpenBao, signer: Signer
) -> None:
    roles.api("POST", "secret/data/iso/meta", {"data": {"v": "m"}})
    objects = "- {objectName: m, secretPath: secret/data/iso/meta, secretKey: v}"
    config = serve_config(names=["vault"], cache_ttl=60.0)
    replies, logins, reads = await simultaneous_first_mounts(
        config, roles, signer, objects, "pod-meta", 2
    )
    assert all(files(r) == {"m": b"m"} for r in replies)
    assert (logins, reads) == (2, 2)  # same entity and policies, other metadata: no sharing
    replies, logins, reads = await simultaneous_first_mounts(
        config, roles, signer, objects, "plain", 2
    )
    assert (logins, reads) == (2, 1)  # the control: identical replies share the read


async def test_new_pod_after_an_update_gets_the_new_value(
    serve_config: Callable[..., ServeConfig], roles: OpenBao, signer: Signer
) -> None:
    objects = "- {objectName: r, secretPath: secret/data/iso/rolled, secretKey: v}"
    roles.api("POST", "secret/data/iso/rolled", {"data": {"v": "old"}})
    async with running(serve_config(names=["vault"], cache_ttl=60.0)) as stubs:
        stub = stubs["vault"]
        first = await stub.Mount(pod_request(roles, signer, objects, pod="web-0", role="plain"))
        assert files(first) == {"r": b"old"}
        roles.api("POST", "secret/data/iso/rolled", {"data": {"v": "new"}})
        # "Rotate the secret, then roll the deployment": the new pod gets the new value.
        rolled = await stub.Mount(pod_request(roles, signer, objects, pod="web-1", role="plain"))
        assert files(rolled) == {"r": b"new"}


async def test_rotation_poll_interval_is_not_stretched_by_the_cache(
    serve_config: Callable[..., ServeConfig], roles: OpenBao, signer: Signer, tmp_path: Path
) -> None:
    """The value is cached for a minute, the volume rotates every 2 s: a rotation that
    begins more than 2 s after the Mount read it (and after the update) reads again and
    writes the new value. Waited for through the tracker's reports, however late that
    rotation comes on a busy machine; one that kept the cached value fails."""
    target = pod_volume(tmp_path / "pods", uid="uid-web-0")
    objects = "- {objectName: r, secretPath: secret/data/iso/rotating, secretKey: v}"
    roles.api("POST", "secret/data/iso/rotating", {"data": {"v": "before"}})
    config = serve_config(
        names=["vault"], write_mode="provider", cache_ttl=60.0, rotation_poll_interval=3600.0
    )
    tracker = WatchedTracker(config.rotation_poll_interval, check_every=0.1)
    async with running(config, tracker) as stubs:
        await stubs["vault"].Mount(
            pod_request(
                roles,
                signer,
                objects,
                pod="web-0",
                role="plain",
                target=str(target),
                rotationPollInterval="2s",
            )
        )
        mounted = time.monotonic()  # the Mount's read began before this
        assert (target / "r").read_text() == "before"
        roles.api("POST", "secret/data/iso/rotating", {"data": {"v": "after"}})
        updated = time.monotonic()

        def due() -> list[Rotation]:  # rotations that may not use the Mount's read
            return [r for r in tracker.rotations if r.started > max(updated, mounted + 2.0)]

        await tracker.wait_for(lambda: bool(due()), "rotation 2 s after the Mount")
        assert (target / "r").read_text() == "after", "rotation used the cached value"
        assert due()[0].wrote


async def test_a_lease_is_shared_within_the_class_only_while_vault_holds_it(
    serve_config: Callable[..., ServeConfig],
    openbao_db: OpenBao,
    postgres: Postgres,
    signer: Signer,
) -> None:
    """Replicas of one class get one database user; once Vault revoked it, the next new
    pod gets a new, working one (a first Mount sees current data)."""
    objects = (
        "- {objectName: u, secretPath: database/creds/app, secretKey: username}\n"
        "- {objectName: p, secretPath: database/creds/app, secretKey: password}"
    )

    def pod(uid: str) -> Any:
        req = vault_request(openbao_db, signer, objects)
        attrs = json.loads(req.attributes)
        attrs["csi.storage.k8s.io/pod.uid"] = uid
        req.attributes = json.dumps(attrs)
        return req

    issued = openbao_db.requests_to("database/creds/app")
    looked_up = openbao_db.requests_to("sys/leases/lookup")
    async with running(serve_config(names=["vault"], cache_ttl=60.0)) as stubs:
        first = files(await stubs["vault"].Mount(pod("db-a")))
        second = files(await stubs["vault"].Mount(pod("db-b")))
        assert second == first
        assert openbao_db.requests_to("database/creds/app") - issued == 1
        assert openbao_db.requests_to("sys/leases/lookup") - looked_up == 1  # proven live
        openbao_db.api("PUT", "sys/leases/revoke-prefix/database/creds/app")
        third = files(await stubs["vault"].Mount(pod("db-c")))
    assert third["u"] != first["u"]
    assert postgres.can_login(third["u"].decode(), third["p"].decode()) == third["u"].decode()
    assert openbao_db.requests_to("database/creds/app") - issued == 2

"""Pods are isolated from each other on AWS: every pod exchanges its own token with STS
(a pod whose token STS refuses gets nothing, whatever other pods of its service account
just read), STS is called at the SPC region's endpoint, a new pod sees the store as it
is when it arrives, and pods of different IAM roles never share a read.

Real moto behind a stand-in for STS's token check (`StsGuard`: moto accepts any token),
the real gRPC daemon."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import pytest

from csiprovider.server import ServeConfig
from csiprovider.v1alpha1 import service_pb2 as pb
from testkit.daemon import running
from testkit.requests import mount_request
from testkit.servers import (
    AwsProxy,
    KubeAPI,
    Signer,
    StsGuard,
    start_aws_proxy,
    start_connect_recorder,
    start_sts_guard,
)
from tests.stores.aws.test_backend import admin, files

ACCOUNT = "123456789012"  # moto's default account: where admin() creates the secrets
ASSUME = "AssumeRoleWithWebIdentity"


def unique(what: str) -> str:
    """moto is shared by the whole session: every test names its own secrets."""
    return f"iso-{what}-{uuid.uuid4().hex[:8]}"


def secret_object(name: str) -> str:
    return f"- {{objectName: {name}, objectType: secretsmanager}}"


def pod_mount(
    signer: Signer,
    uid: str,
    objects: str,
    *,
    service_account: str = "app",
    region: str = "us-east-1",
    token: str | None = None,
) -> pb.MountRequest:
    """The driver's Mount for one pod (its own uid, name, target and token)."""
    name = f"app-{uid}"
    if token is None:
        token = signer.token(
            "default", service_account, ["sts.amazonaws.com"], pod=name, pod_uid=uid
        )
    tokens = {"sts.amazonaws.com": {"token": token, "expirationTimestamp": "2030-01-01T00:00:00Z"}}
    return mount_request(
        objects,
        target_path=f"/var/lib/kubelet/pods/{uid}/volumes/secrets",
        extra={
            "region": region,
            "csi.storage.k8s.io/pod.uid": uid,
            "csi.storage.k8s.io/pod.name": name,
            "csi.storage.k8s.io/serviceAccount.name": service_account,
            "csi.storage.k8s.io/serviceAccount.tokens": json.dumps(tokens),
        },
    )


def new_uid() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def roles(kube_api: KubeAPI) -> Iterator[Callable[[str], str]]:
    """Annotate a fresh service account with its own IRSA role; answer the role ARN."""
    made: list[tuple[str, str]] = []

    def annotate(service_account: str) -> str:
        role = f"arn:aws:iam::{ACCOUNT}:role/{service_account}"
        kube_api.service_accounts[("default", service_account)] = {
            "eks.amazonaws.com/role-arn": role
        }
        made.append(("default", service_account))
        return role

    yield annotate
    for key in made:
        kube_api.service_accounts.pop(key, None)


@pytest.fixture
def guard(moto: str, signer: Signer, monkeypatch: pytest.MonkeyPatch) -> Iterator[StsGuard]:
    """moto for Secrets Manager (AWS_ENDPOINT_URL), the token-checking guard for STS."""
    g = start_sts_guard(moto, signer)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", g.url)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    yield g
    g.server.shutdown()


async def test_pods_whose_tokens_sts_refuses_get_nothing_after_a_good_pod_mounted(
    serve_config: Callable[..., ServeConfig],
    kube_api: KubeAPI,
    guard: StsGuard,
    signer: Signer,
    roles: Callable[[str], str],
) -> None:
    sa = unique("sa")
    role = roles(sa)
    secret = unique("shared")
    admin(guard.target, "secretsmanager").create_secret(Name=secret, SecretString="s3cret")
    objects = secret_object(secret)
    good = new_uid()
    bad_tokens = {
        "garbage": "not-a-jwt",
        "expired": signer.token(
            "default", sa, ["sts.amazonaws.com"], pod="app-x", pod_uid="x", ttl=-600
        ),
        "other issuer": Signer().token(
            "default", sa, ["sts.amazonaws.com"], pod="app-y", pod_uid="y"
        ),
    }
    config = serve_config(names=["aws"], kube_api_url=kube_api.url, cache_ttl=60.0)
    async with running(config) as stubs:
        reply = await stubs["aws"].Mount(pod_mount(signer, good, objects, service_account=sa))
        assert files(reply) == {secret: b"s3cret"}
        for what, token in bad_tokens.items():
            req = pod_mount(signer, new_uid(), objects, service_account=sa, token=token)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stubs["aws"].Mount(req)
            assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED, what
            details = info.value.details() or ""
            assert f"{ASSUME} for {role} failed" in details, (what, details)
            assert "s3cret" not in details
    # one exchange per pod, the refused pods included: nobody rode on the good pod's
    assert guard.count(ASSUME) == 4
    assert [c.token_valid for c in guard.calls if c.action == ASSUME] == [True, False, False, False]
    # AWS_ENDPOINT_URL_STS is honoured: every exchange came to the guard, by its address
    assert {c.host for c in guard.calls} == {urlsplit(guard.url).netloc}


async def test_every_pod_exchanges_its_own_token_and_republishes_do_not(
    serve_config: Callable[..., ServeConfig],
    kube_api: KubeAPI,
    guard: StsGuard,
    signer: Signer,
    roles: Callable[[str], str],
) -> None:
    sa = unique("sa")
    roles(sa)
    secret = unique("three-pods")
    admin(guard.target, "secretsmanager").create_secret(Name=secret, SecretString="v")
    objects = secret_object(secret)
    pods = [pod_mount(signer, new_uid(), objects, service_account=sa) for _ in range(3)]
    config = serve_config(names=["aws"], kube_api_url=kube_api.url, cache_ttl=60.0)
    async with running(config) as stubs:
        for req in pods:
            assert files(await stubs["aws"].Mount(req)) == {secret: b"v"}
        assert guard.count(ASSUME, valid=True) == 3
        assert guard.count(ASSUME) == 3
        for _ in range(2):  # kubelet's republishes
            for req in pods:
                assert files(await stubs["aws"].Mount(req)) == {secret: b"v"}
    assert guard.count(ASSUME) == 3  # credentials kept per pod until near expiry


async def test_a_new_pod_after_an_update_gets_the_new_value(
    serve_config: Callable[..., ServeConfig],
    kube_api: KubeAPI,
    guard: StsGuard,
    signer: Signer,
    roles: Callable[[str], str],
) -> None:
    sa = unique("sa")
    roles(sa)
    secret = unique("updated")
    sm = admin(guard.target, "secretsmanager")
    sm.create_secret(Name=secret, SecretString="v1")
    objects = secret_object(secret)
    config = serve_config(names=["aws"], kube_api_url=kube_api.url, cache_ttl=60.0)
    async with running(config) as stubs:
        first = pod_mount(signer, new_uid(), objects, service_account=sa)
        assert files(await stubs["aws"].Mount(first)) == {secret: b"v1"}
        sm.put_secret_value(SecretId=secret, SecretString="v2")
        second = pod_mount(signer, new_uid(), objects, service_account=sa)
        assert files(await stubs["aws"].Mount(second)) == {secret: b"v2"}


@pytest.mark.parametrize(
    ("region", "endpoint"),
    [
        ("eu-west-1", "sts.eu-west-1.amazonaws.com:443"),
        ("cn-north-1", "sts.cn-north-1.amazonaws.com.cn:443"),
    ],
)
async def test_sts_is_called_at_the_spc_regions_endpoint(
    serve_config: Callable[..., ServeConfig],
    kube_api: KubeAPI,
    signer: Signer,
    roles: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    region: str,
    endpoint: str,
) -> None:
    """No endpoint override: botocore's own resolution for the SPC's region, seen as the
    CONNECT target at an HTTPS proxy that lets nothing through. The daemon answers by
    itself (UNAVAILABLE once STS cannot be reached, or its own Mount deadline); the
    client's deadline is only a guard against a hang."""
    server, proxy_url, targets = start_connect_recorder()
    for name in (
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_STS",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER",
        "AWS_STS_REGIONAL_ENDPOINTS",
        "AWS_USE_FIPS_ENDPOINT",
        "AWS_USE_DUALSTACK_ENDPOINT",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "NO_PROXY",
        "no_proxy",
        "HTTP_PROXY",
        "http_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("HTTPS_PROXY", proxy_url)
    monkeypatch.setenv("https_proxy", proxy_url)
    sa = unique("sa")
    roles(sa)
    req = pod_mount(
        signer, new_uid(), secret_object(unique("regional")), service_account=sa, region=region
    )
    try:
        async with running(serve_config(names=["aws"], kube_api_url=kube_api.url)) as stubs:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stubs["aws"].Mount(req, timeout=60.0)
    finally:
        server.shutdown()
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE, info.value.details()
    assert f"cannot reach STS at https://{endpoint.removesuffix(':443')}" in (
        info.value.details() or ""
    )
    assert targets and set(targets) == {endpoint}


@pytest.fixture
def counting(guard: StsGuard, monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsProxy]:
    """Secrets Manager through a proxy that counts its operations."""
    p = start_aws_proxy(guard.target)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", p.url)
    yield p
    p.server.shutdown()


async def test_pods_of_different_roles_never_share_a_read(
    serve_config: Callable[..., ServeConfig],
    kube_api: KubeAPI,
    guard: StsGuard,
    counting: AwsProxy,
    signer: Signer,
    roles: Callable[[str], str],
) -> None:
    sa_a, sa_b = unique("sa-a"), unique("sa-b")
    roles(sa_a)
    roles(sa_b)
    secret = unique("per-role")
    admin(guard.target, "secretsmanager").create_secret(Name=secret, SecretString="for-a")
    objects = secret_object(secret)
    pod_a = pod_mount(signer, new_uid(), objects, service_account=sa_a)
    pod_b = pod_mount(signer, new_uid(), objects, service_account=sa_b)
    config = serve_config(names=["aws"], kube_api_url=kube_api.url, cache_ttl=60.0)
    async with running(config) as stubs:
        assert files(await stubs["aws"].Mount(pod_a)) == {secret: b"for-a"}
        assert files(await stubs["aws"].Mount(pod_a)) == {secret: b"for-a"}  # republish
        assert counting.count("GetSecretValue") == 1  # the republish was served cached
        # Role B may not read it: its first Mount must ask AWS as B and be refused, even
        # though role A's value is cached (and a DescribeSecret would not prove access).
        counting.errors["GetSecretValue"] = [(400, "AccessDeniedException")]
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stubs["aws"].Mount(pod_b)
        assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED
        assert "for-a" not in (info.value.details() or "")
        assert counting.count("GetSecretValue") == 2
        # Once B may read, B's Mount reads for itself again (nothing of A's is reused).
        assert files(await stubs["aws"].Mount(pod_b)) == {secret: b"for-a"}
        assert counting.count("GetSecretValue") == 3
        assert counting.count("DescribeSecret") == 0
    assert guard.count(ASSUME, valid=True) == 2  # one exchange per pod


async def test_many_identities_share_one_botocore_session(
    serve_config: Callable[..., ServeConfig],
    kube_api: KubeAPI,
    guard: StsGuard,
    signer: Signer,
    roles: Callable[[str], str],
) -> None:
    """30 service accounts, each its own IAM role, each reading Secrets Manager and SSM:
    every client comes from one shared session (service models parsed once), so the
    daemon grows by a few MiB, not the ~600 MiB of a session per client."""
    import resource

    secret = unique("many")
    admin(guard.target, "secretsmanager").create_secret(Name=secret, SecretString="v")
    parameter = unique("param")
    admin(guard.target, "ssm").put_parameter(Name=parameter, Value="p", Type="String")
    objects = f"{secret_object(secret)}\n- {{objectName: {parameter}, objectType: ssmparameter}}"
    config = serve_config(names=["aws"], kube_api_url=kube_api.url)
    async with running(config) as stubs:
        for _ in range(2):  # the first identity loads the models; measure the rest
            sa = unique("warm")
            roles(sa)
            await stubs["aws"].Mount(pod_mount(signer, new_uid(), objects, service_account=sa))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for _ in range(30):
            sa = unique("sa")
            roles(sa)
            reply = await stubs["aws"].Mount(
                pod_mount(signer, new_uid(), objects, service_account=sa)
            )
            assert files(reply) == {secret: b"v", parameter: b"p"}
        grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert guard.count(ASSUME, valid=True) == 32
    assert grown_mib < 60, f"{grown_mib:.0f} MiB for 30 identities x 2 services"

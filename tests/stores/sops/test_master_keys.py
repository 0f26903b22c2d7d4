"""`backend: sops` with the master keys teams use beside age: AWS KMS (moto, with the
pod's IRSA credentials, an encryption context and a role to assume) and Vault transit
(OpenBao, with the pod's own Vault login). Documents are encrypted by the real sops
binary against those very servers, mounted through the in-process daemon and compared
with `sops --decrypt`; documents kept as files of the file backend too."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from csiprovider.server import ServeConfig
from testkit import sops
from testkit.daemon import running
from testkit.requests import mount_request, pod_volume
from testkit.servers import KubeAPI, OpenBao, Signer, start_aws_proxy
from testkit.tracker import WatchedTracker, watching

DECRYPTER = "arn:aws:iam::123456789012:role/sops-decrypter"
PLAIN = b"db:\n  user: app\n  password: kms-and-transit-9Q\nport: 5432\n"
POD_UID = "8d3a5a6e-3c52-4bd4-9c69-2b0e1b2f1a11"


@pytest.fixture(scope="module")
def transit(openbao: OpenBao) -> OpenBao:
    """A `sops` transit engine: key `app` the pod's policy may decrypt with, key
    `forbidden` it may not."""
    mounts = openbao.api("GET", "sys/mounts") or {}
    if "sops/" not in (mounts.get("data") or mounts):
        openbao.api("POST", "sys/mounts/sops", {"type": "transit"})
        openbao.api("POST", "sops/keys/app", {})
        openbao.api("POST", "sops/keys/forbidden", {})
        policy = openbao.api("GET", "sys/policies/acl/app")["data"]["policy"]
        policy += 'path "sops/decrypt/app" { capabilities = ["update"] }\n'
        openbao.api("PUT", "sys/policies/acl/app", {"policy": policy})
    return openbao


@pytest.fixture
async def daemon(
    serve_config: Callable[..., ServeConfig], kube_api: KubeAPI, aws_env: str
) -> AsyncIterator[Any]:
    async with running(serve_config(kube_api_url=kube_api.url)) as stubs:
        yield stubs["csiprovider"]


def kms_key(moto: str) -> str:
    import boto3

    kms = boto3.client(
        "kms",
        endpoint_url=moto,
        region_name="us-east-1",
        aws_access_key_id="admin",
        aws_secret_access_key="admin",
    )
    return str(kms.create_key()["KeyMetadata"]["Arn"])


def sops_env(moto: str = "", bao: OpenBao | None = None) -> dict[str, str]:
    """What a developer's shell holds when running sops: admin credentials."""
    env: dict[str, str] = {}
    if moto:
        env.update(
            AWS_ENDPOINT_URL=moto,
            AWS_ACCESS_KEY_ID="admin",
            AWS_SECRET_ACCESS_KEY="admin",
            AWS_REGION="us-east-1",
        )
    if bao is not None:
        env.update(VAULT_ADDR=bao.addr, VAULT_TOKEN=bao.token)
    return env


def request(
    objects: list[dict[str, Any]],
    signer: Signer,
    bao: OpenBao | None = None,
    age: str = "",
    irsa: bool = True,
    **params: str,
) -> Any:
    """A Mount with the pod's tokens (IRSA unless `irsa` is False, Vault), the SPC's Vault
    settings when `bao` is given, and an age key in its nodePublishSecretRef."""
    tokens = {
        "sts.amazonaws.com": {
            "token": signer.token("default", "app", ["sts.amazonaws.com"]),
            "expirationTimestamp": "2030-01-01T00:00:00Z",
        },
        "vault": {
            "token": signer.token("default", "app", ["vault"], pod="app-0", pod_uid=POD_UID),
            "expirationTimestamp": "2030-01-01T00:00:00Z",
        },
    }
    if not irsa:
        del tokens["sts.amazonaws.com"]
    extra = {
        "csi.storage.k8s.io/serviceAccount.name": "app",
        "csi.storage.k8s.io/serviceAccount.tokens": json.dumps(tokens),
        **params,
    }
    if bao is not None:
        extra.update(roleName="app", vaultAddress=bao.addr)
    req = mount_request(yaml.safe_dump(objects), extra=extra)
    req.secrets = json.dumps({"sops-age-key": age} if age else {})
    return req


def files(reply: Any) -> dict[str, bytes]:
    return {f.path: f.contents for f in reply.files}


async def refused(stub: Any, req: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Mount(req)
    return info.value


@pytest.mark.sops
async def test_kms_entry_with_context_and_role_uses_the_pods_irsa(
    daemon: Any, aws_env: str, signer: Signer
) -> None:
    arn = kms_key(aws_env)
    document = sops.encrypt_with(
        PLAIN,
        "yaml",
        ["--kms", f"{arn}+{DECRYPTER}", "--encryption-context", "app:web,team:a"],
        sops_env(aws_env),
    )
    entry = yaml.safe_load(document)["sops"]["kms"][0]
    assert entry["role"] == DECRYPTER and entry["context"] == {"app": "web", "team": "a"}
    expected = sops.decrypt(document, "yaml", env=sops_env(aws_env))
    reply = await daemon.Mount(
        request(
            [
                {"objectName": "doc", "backend": "sops", "document": document},
                {
                    "objectName": "pw",
                    "backend": "sops",
                    "document": document,
                    "jmesPath": "db.password",
                },
            ],
            signer,
        )
    )
    got = files(reply)
    assert yaml.safe_load(got["doc"]) == yaml.safe_load(expected)
    assert got["pw"] == b"kms-and-transit-9Q"

    # the encryption context is authenticated: a document whose context was edited
    # (the MAC does not cover metadata) cannot unwrap its data key
    edited = document.replace("team: a", "team: b")
    assert edited != document
    error = await refused(
        daemon, request([{"objectName": "doc", "backend": "sops", "document": edited}], signer)
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert f"kms '{arn}'" in (error.details() or "") or arn in (error.details() or "")
    assert "kms-and-transit" not in (error.details() or "")


@pytest.mark.sops
async def test_kms_refusal_is_told_in_aws_words(
    serve_config: Callable[..., ServeConfig],
    kube_api: KubeAPI,
    aws_env: str,
    signer: Signer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    arn = kms_key(aws_env)
    document = sops.encrypt_with(
        b'{"a": "kms-and-transit-9Q"}', "json", ["--kms", arn], sops_env(aws_env)
    )
    proxy = start_aws_proxy(aws_env)  # moto enforces no IAM: AWS's refusal, as AWS sends it
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", proxy.url)
    proxy.errors["Decrypt"] = [(400, "AccessDeniedException")]
    try:
        async with running(serve_config(kube_api_url=kube_api.url)) as stubs:
            error = await refused(
                stubs["csiprovider"],
                request([{"objectName": "doc", "backend": "sops", "document": document}], signer),
            )
    finally:
        proxy.server.shutdown()
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    details = error.details() or ""
    assert "AccessDeniedException" in details and arn in details
    assert "age:" not in details  # the document has no age recipient: not worth a word


@pytest.mark.sops
async def test_hc_vault_entry_uses_the_pods_vault_login(
    daemon: Any, transit: OpenBao, signer: Signer
) -> None:
    url = f"{transit.addr}/v1/sops/keys/app"
    for fmt, plain in (("yaml", PLAIN), ("dotenv", b"USER=app\nPASSWORD=p9\n")):
        document = sops.encrypt_with(plain, fmt, ["--hc-vault-transit", url], sops_env(bao=transit))
        expected = sops.decrypt(document, fmt, env=sops_env(bao=transit))
        reply = await daemon.Mount(
            request(
                [{"objectName": "doc", "backend": "sops", "document": document}], signer, transit
            )
        )
        if fmt == "yaml":
            assert yaml.safe_load(files(reply)["doc"]) == yaml.safe_load(expected)
        else:
            assert files(reply)["doc"] == expected


@pytest.mark.sops
async def test_hc_vault_key_the_pod_may_not_use_is_refused_in_vaults_words(
    daemon: Any, transit: OpenBao, signer: Signer
) -> None:
    document = sops.encrypt_with(
        PLAIN,
        "yaml",
        ["--hc-vault-transit", f"{transit.addr}/v1/sops/keys/forbidden"],
        sops_env(bao=transit),
    )
    error = await refused(
        daemon,
        request([{"objectName": "doc", "backend": "sops", "document": document}], signer, transit),
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    details = error.details() or ""
    assert "hc_vault 'sops/forbidden'" in details and "permission denied" in details
    assert "kms-and-transit" not in details


@pytest.mark.sops
async def test_a_key_group_where_only_one_master_key_is_usable(
    daemon: Any, aws_env: str, transit: OpenBao, signer: Signer
) -> None:
    """age (the pod brings a key of another recipient), hc_vault (a key the pod's policy
    refuses) and kms (the pod's IRSA may use it): one group, the kms key opens it."""
    stranger, other = sops.age_key(), sops.age_key()
    arn = kms_key(aws_env)
    document = sops.encrypt_with(
        PLAIN,
        "yaml",
        [
            "--age",
            stranger.recipient,
            "--hc-vault-transit",
            f"{transit.addr}/v1/sops/keys/forbidden",
            "--kms",
            arn,
        ],
        {**sops_env(aws_env), **sops_env(bao=transit)},
    )
    group = yaml.safe_load(document)["sops"]
    assert group["age"] and group["hc_vault"] and group["kms"]
    reply = await daemon.Mount(
        request(
            [
                {
                    "objectName": "pw",
                    "backend": "sops",
                    "document": document,
                    "jmesPath": "db.password",
                }
            ],
            signer,
            transit,
            age=other.identity,
        )
    )
    assert files(reply) == {"pw": b"kms-and-transit-9Q"}

    # without the kms key's identity (no IRSA token): every refusal is told
    error = await refused(
        daemon,
        request(
            [
                {
                    "objectName": "pw",
                    "backend": "sops",
                    "document": document,
                    "jmesPath": "db.password",
                }
            ],
            signer,
            transit,
            age=other.identity,
            irsa=False,
        ),
    )
    details = error.details() or ""
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "permission denied" in details  # Vault's words for the hc_vault key
    assert "kms: IRSA token extraction failed" in details
    assert "age: the pod's sops-age-key" in details


@pytest.mark.sops
async def test_document_kept_as_a_file_of_the_namespace_directory(
    daemon: Any, file_root: Path, transit: OpenBao, signer: Signer
) -> None:
    url = f"{transit.addr}/v1/sops/keys/app"
    directory = file_root / "default" / "sops"
    directory.mkdir(parents=True, exist_ok=True)
    for name, fmt in (
        ("app.yaml", "yaml"),
        ("app.env", "dotenv"),
        ("app.ini", "ini"),
        ("blob.bin", "binary"),
    ):
        plain = {
            "yaml": PLAIN,
            "dotenv": b"A=1\n",
            "ini": b"[s]\nk = v\n",
            "binary": b"\x00raw\xff",
        }[fmt]
        (directory / name).write_text(
            sops.encrypt_with(plain, fmt, ["--hc-vault-transit", url], sops_env(bao=transit))
        )
    reply = await daemon.Mount(
        request(
            [
                {"objectName": "env", "backend": "sops", "path": "sops/app.env"},
                {"objectName": "ini", "backend": "sops", "path": "sops/app.ini"},
                {"objectName": "blob", "backend": "sops", "path": "sops/blob.bin"},
                {
                    "objectName": "pw",
                    "backend": "sops",
                    "path": "sops/app.yaml",
                    "jmesPath": "db.password",
                },
            ],
            signer,
            transit,
        )
    )
    assert files(reply) == {
        "env": b"A=1\n",
        "ini": b"[s]\nk = v\n",
        "blob": b"\x00raw\xff",
        "pw": b"kms-and-transit-9Q",
    }

    error = await refused(
        daemon,
        request(
            [{"objectName": "x", "backend": "sops", "path": "../other/app.yaml"}], signer, transit
        ),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "'..'" in (error.details() or "")
    error = await refused(
        daemon,
        request(
            [{"objectName": "x", "backend": "sops", "path": "sops/missing.yaml"}], signer, transit
        ),
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_hostile_documents_are_refused_before_they_are_parsed(
    daemon: Any, file_root: Path, signer: Signer
) -> None:
    """A document kept as a file is not bounded by the SPC's size: nesting, alias
    expansion and value counts are refused before any tree is built."""
    directory = file_root / "default" / "hostile"
    directory.mkdir(parents=True, exist_ok=True)
    laughs = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9)
    )
    cases = {
        "deep.json": ("[" * 20_000 + "]" * 20_000, "nested deeper than 64"),
        "deep.yaml": ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested deeper than 64"),
        "laughs.yaml": (laughs, "YAML alias"),
        "wide.json": ("[" + ",".join(["1"] * 200_000) + "]", "more than 100000 values"),
        "strings.json": ('{"a": "[[[[[[[[", "sops": {}}', "no MAC"),
    }
    for name, (text, words) in cases.items():
        (directory / name).write_text(text)
        error = await refused(
            daemon,
            request([{"objectName": "x", "backend": "sops", "path": f"hostile/{name}"}], signer),
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, name
        assert words in (error.details() or ""), (name, error.details())


@pytest.mark.sops
async def test_a_document_file_re_encrypted_reaches_provider_written_volumes_at_once(
    serve_config: Callable[..., ServeConfig], file_root: Path, tmp_path: Path
) -> None:
    """Rotating the ciphertext in git and syncing it to the file root: the volume reading
    it is due at once (watched like file objects), not at the next poll an hour away (the
    wait is for the tracker's reports: its guard is a minute, far below the hour)."""
    key = sops.age_key()
    doc = file_root / "default" / "app.enc.env"
    doc.write_text(sops.encrypt(b"PASSWORD=first\n", "dotenv", [key.recipient]))
    target = pod_volume(tmp_path / "pods")
    config = serve_config(write_mode="provider", rotation_poll_interval=3600.0)
    tracker = WatchedTracker(config.rotation_poll_interval)
    async with running(config, tracker) as stubs:
        req = mount_request(
            [{"objectName": "app.env", "backend": "sops", "path": "app.enc.env"}],
            target_path=str(target),
        )
        req.secrets = json.dumps({"sops-age-key": key.identity})
        await stubs["csiprovider"].Mount(req)
        assert (target / "app.env").read_text() == "PASSWORD=first\n"
        await watching(tracker, file_root)
        doc.write_text(sops.encrypt(b"PASSWORD=second\n", "dotenv", [key.recipient]))
        await tracker.wait_for(
            lambda: (target / "app.env").read_text() == "PASSWORD=second\n",
            "rotation to the re-encrypted document",
        )


@pytest.mark.sops
async def test_kms_entry_with_eks_pod_identity(
    serve_config: Callable[..., ServeConfig], aws_env: str, signer: Signer
) -> None:
    """`usePodIdentity: "true"`: the kms entry is decrypted with the credentials the node's
    Pod Identity agent gives for the pod's own token."""
    from testkit.servers import start_pod_identity_agent

    arn = kms_key(aws_env)
    document = sops.encrypt_with(PLAIN, "yaml", ["--kms", arn], sops_env(aws_env))
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
        yaml.safe_dump(
            [
                {
                    "objectName": "pw",
                    "backend": "sops",
                    "document": document,
                    "jmesPath": "db.password",
                }
            ]
        ),
        extra={
            "usePodIdentity": "true",
            "csi.storage.k8s.io/serviceAccount.tokens": json.dumps(
                {"pods.eks.amazonaws.com": {"token": token, "expirationTimestamp": ""}}
            ),
        },
    )
    try:
        async with running(serve_config(aws_pod_identity_endpoint=url)) as stubs:
            reply = await stubs["csiprovider"].Mount(req)
    finally:
        server.shutdown()
    assert files(reply) == {"pw": b"kms-and-transit-9Q"}
    assert seen == [token]


@pytest.mark.sops
async def test_a_hostile_key_regex_is_refused(daemon: Any, signer: Signer) -> None:
    """`encrypted_regex` is Go's regexp (RE2 here) under RE2's default memory budget: a
    pattern that would take a second and 100 MB to compile is refused instead."""
    key = sops.age_key()
    document = sops.encrypt(b"a: b\n", "yaml", [key.recipient], "--encrypted-regex", "^a$")
    for regex, words in (
        (r"\pL{1000}", "expression too large"),
        ("x" * 2000, "more than 1024"),
        ("(?=a)", "invalid or unsupported Perl syntax"),
    ):
        hostile = document.replace("encrypted_regex: ^a$", f"encrypted_regex: '{regex}'")
        assert hostile != document
        error = await refused(
            daemon,
            request(
                [{"objectName": "x", "backend": "sops", "document": hostile}],
                signer,
                age=key.identity,
            ),
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert words in (error.details() or ""), error.details()


@pytest.mark.sops
async def test_forged_metadata_and_values_are_refused_without_a_cost(
    daemon: Any, signer: Signer
) -> None:
    """What the review found (each once took the daemon's memory or its GIL for
    seconds to minutes): a flattened list index far past the document's keys, an
    ENC[...] value built to make a backtracking regex explode, malformed or too many age
    identities. Each is refused at once; the wait_for is a liveness bound, not a
    performance target."""
    key = sops.age_key()
    cases = [
        (
            "USER=ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]\n"
            "sops_age__list_30000000__map_enc=x\nsops_mac=m\n",
            "dotenv",
            key.identity,
            "list index 30000000",
        ),
        (
            json.dumps(
                {
                    **json.loads(sops.encrypt(b'{"a": "b"}', "json", [key.recipient])),
                    "a": "ENC[AES256_GCM,data:" + ",iv:,tag:,type:" * 250,
                }
            ),
            "json",
            key.identity,
            "not in sops' ENC[...] format",
        ),
        ("a: b\n", "yaml", "AGE-SECRET-KEY-1QQQQ", "age identity 1 of sops-age-key is malformed"),
        ("a: b\n", "yaml", "\n".join([key.identity] * 33), "more than 32"),
    ]
    for text, fmt, identity, words in cases:
        error = await asyncio.wait_for(
            refused(
                daemon,
                request(
                    [{"objectName": "x", "backend": "sops", "document": text, "format": fmt}],
                    signer,
                    age=identity,
                ),
            ),
            30,
        )
        assert error.code() in (
            grpc.StatusCode.INVALID_ARGUMENT,
            grpc.StatusCode.PERMISSION_DENIED,
        ), error.details()
        assert words in (error.details() or ""), error.details()
        assert key.identity not in (error.details() or "")


@pytest.mark.sops
async def test_a_refusal_is_not_hidden_by_another_stores_outage(
    serve_config: Callable[..., ServeConfig],
    kube_api: KubeAPI,
    aws_env: str,
    transit: OpenBao,
    signer: Signer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Vault refuses the pod (its policy was revoked) while KMS cannot be reached: the
    answer is PERMISSION_DENIED, not UNAVAILABLE, which would let the daemon keep serving
    the last good document to a pod that may no longer read it."""
    arn = kms_key(aws_env)
    document = sops.encrypt_with(
        PLAIN,
        "yaml",
        ["--hc-vault-transit", f"{transit.addr}/v1/sops/keys/forbidden", "--kms", arn],
        {**sops_env(aws_env), **sops_env(bao=transit)},
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", "http://127.0.0.1:9")  # nothing listens
    async with running(serve_config(kube_api_url=kube_api.url)) as stubs:
        error = await refused(
            stubs["csiprovider"],
            request(
                [{"objectName": "doc", "backend": "sops", "document": document}], signer, transit
            ),
        )
    details = error.details() or ""
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED, details
    assert "permission denied" in details and f"kms '{arn}'" in details

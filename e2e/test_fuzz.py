"""A seeded mutation fuzzer over Mount requests of all three dialects, in both write modes,
against real daemon processes (and real OpenBao and moto behind them).

Each input starts from a valid request and takes a few mutations: attributes deleted or
replaced with hostile values (paths, NULs, lone surrogates, huge or deeply nested text,
alias bombs, huge numbers, hostile templates), `objects` text spliced, cut or flipped, the
envelope (permission, target path, secrets, tokens) broken. Whatever comes in:

- the daemon never dies, and its peak RSS stays below MAX_RSS_MIB;
- no answer is INTERNAL or UNKNOWN, and the daemon answers each itself, by its own
  Mount deadline, never leaving it to the client's;
- no error text is longer than 1 KiB or contains a planted secret (nor does the log:
  the `start_daemon` fixture checks that);
- nothing is written outside the target paths (provider-writes mode).

FUZZ_INPUTS (default 5000) and FUZZ_SEED (default 20261123) choose the run; the figures
are printed (pytest -s shows them) and a failure names the seed and the input number.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from csiprovider.v1alpha1 import service_pb2 as pb
from csiprovider.v1alpha1 import service_pb2_grpc as pb_grpc
from e2e.conftest import SECRET_VALUES, Daemon
from testkit.requests import pod_volume
from testkit.servers import OpenBao, Signer, start_pod_identity_agent

INPUTS = int(os.environ.get("FUZZ_INPUTS", "5000"))
SEED = int(os.environ.get("FUZZ_SEED", "20261123"))
MAX_RSS_MIB = 256  # the DaemonSet's memory limit
MOUNT_TIMEOUT = 5.0
IN_FLIGHT = 8
CLIENT_TIMEOUT = MOUNT_TIMEOUT + 60  # the driver's is longer than the daemon's too
VAULT_SECRET = "fuzz-vault-Hq73"
AWS_SECRET = "fuzz-aws-Pn48"
PLANTED = (*SECRET_VALUES, VAULT_SECRET, AWS_SECRET)
FORBIDDEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}

HOSTILE = [
    "",
    "..",
    "../..",
    "/etc/passwd",
    "a/../../b",
    "./x",
    "x/",
    "//x",
    "..data",
    "a\x00b",
    "\ud800",
    "\udcff",
    "é" * 40,
    "x" * 5000,
    "[" * 300_000,
    "{" * 3000,
    "[" * 60,
    "9" * 5000,
    "-0x" + "f" * 400,
    "&a [*a]",
    "*a",
    "!!python/object:os.system 'id'",
    "{{ 'x' * 10**9 }}",
    "{{ 1/0 }}",
    "{{ objects['u'][objects['p']] }}",
    "{{ '%0999999999d' % 1 }}",
    "{{ range(10**9)|list }}",
    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    "0777",
    "0o999",
    "420",
    "-1",
    "1e309",
    "true",
    "null",
    "~",
    "- - - -",
    ": :",
    "? ? ?",
    "\t",
    "\r\n",
    "%",
    "%zz",
    "?version=abc",
    "a" * 300,
]
BOMB = "".join(f"b{i}: &b{i} [{', '.join([f'*b{i - 1}'] * 9)}]\n" for i in range(1, 8))
BOMB = "b0: &b0 [x, x, x, x, x, x, x, x, x]\n" + BOMB


def seeds(bao: OpenBao, signer: Signer) -> dict[str, list[dict[str, str]]]:
    """Valid attributes per provider name (before the pod fields are added)."""
    vault_token = signer.token("default", "app", ["vault"])
    aws_tokens = json.dumps(
        {"pods.eks.amazonaws.com": {"token": "agent-token", "expirationTimestamp": ""}}
    )
    return {
        "csiprovider": [
            {
                "objects": "- {objectName: u, backend: file, path: db/username}\n"
                "- {objectName: p, backend: file, path: db/password}\n"
                "- objectName: t\n  template: \"{{ objects['u'] }}:{{ objects['p'] }}\"\n"
            },
            {
                "objects": "- {objectName: d, backend: file, prefix: db, maxItems: 5}\n"
                "- {objectName: b, backend: file, path: b64, encoding: base64, "
                "filePermission: '0600'}\n"
            },
            {
                "objects": "- {objectName: v, backend: vault, secretPath: secret/data/fuzz, "
                f"secretKey: k, roleName: app, vaultAddress: '{bao.addr}', "
                "vaultAuthMountPath: jwt}\n",
                "csi.storage.k8s.io/serviceAccount.tokens": json.dumps(
                    {"vault": {"token": vault_token, "expirationTimestamp": ""}}
                ),
            },
        ],
        "vault": [
            {
                "roleName": "app",
                "vaultAddress": bao.addr,
                "vaultAuthMountPath": "jwt",
                "objects": "- {objectName: v, secretPath: secret/data/fuzz, secretKey: k}\n"
                "- {objectName: all, secretPath: secret/data/fuzz, "
                "secretFormat: data}\n",
                "csi.storage.k8s.io/serviceAccount.tokens": json.dumps(
                    {"vault": {"token": vault_token, "expirationTimestamp": ""}}
                ),
            },
        ],
        "aws": [
            {
                "region": "us-east-1",
                "usePodIdentity": "true",
                "objects": "- objectName: fuzz-secret\n  objectType: secretsmanager\n"
                "  jmesPath:\n    - {path: k, objectAlias: k}\n",
                "csi.storage.k8s.io/serviceAccount.tokens": aws_tokens,
            },
        ],
    }


class Mutator:
    """Seeded mutations of a valid request: every run with one seed is the same run."""

    def __init__(self, seed: str) -> None:
        self.random = random.Random(seed)

    def hostile(self) -> str:
        pick = self.random.random()
        if pick < 0.7:
            return self.random.choice(HOSTILE)
        if pick < 0.85:
            return BOMB
        return "".join(
            chr(self.random.randrange(1, 0x3000)) for _ in range(self.random.randrange(1, 40))
        )

    def text(self, text: str) -> str:
        """Splice, cut, flip or duplicate part of a text (the YAML `objects`)."""
        if not text:
            return self.hostile()
        r = self.random
        at = r.randrange(len(text) + 1)
        choice = r.randrange(6)
        if choice == 0:
            return text[:at] + self.hostile() + text[at:]
        if choice == 1:
            return text[:at]
        if choice == 2:
            return text[:at] + text[r.randrange(at, len(text) + 1) :]
        if choice == 3:
            line = r.choice(text.splitlines() or [text])
            return text + (line + "\n") * r.randrange(1, 600)
        if choice == 4 and at < len(text):
            return text[:at] + chr(ord(text[at]) ^ (1 << r.randrange(7))) + text[at + 1 :]
        key = r.choice(
            [
                "objectName",
                "path",
                "secretPath",
                "filePermission",
                "encoding",
                "template",
                "secretArgs",
                "jmesPath",
                "objectAlias",
                "maxItems",
                "prefix",
                "method",
                "secretKey",
                "expand",
                "objectType",
            ]
        )
        return text + f"- {{{key}: {json.dumps(self.hostile())}}}\n"

    def request(self, name: str, attrs: dict[str, str], target: Path) -> pb.MountRequest:
        r = self.random
        attrs = dict(attrs)
        permission, target_path, secrets = "420", str(target), "{}"
        raw: str | None = None
        for _ in range(r.randrange(1, 4)):
            kind = r.randrange(10)
            key = r.choice(sorted(attrs))
            if kind <= 3 and "objects" in attrs:
                attrs["objects"] = self.text(attrs["objects"])
            elif kind == 4:
                attrs[key] = self.hostile()
            elif kind == 5:
                del attrs[key]
            elif kind == 6:
                permission = r.choice(
                    ["", "-1", "512", "4.2", "null", '"420"', "0644", "420" * 1000, self.hostile()]
                )
            elif kind == 7:
                target_path = r.choice(
                    [
                        "",
                        "relative",
                        "/nonexistent/x",
                        f"{target}/../..",
                        str(target.parent),
                        self.hostile(),
                    ]
                )
            elif kind == 8:
                secrets = r.choice(
                    [
                        "[]",
                        "{",
                        '{"a": 1}',
                        '{"a": "' + "x" * 2_000_000 + '"}',
                        json.dumps({"k": self.hostile()}),
                        '{"a":' * 4000,
                    ]
                )
            else:
                raw = self.text(json.dumps(attrs))
        return pb.MountRequest(
            attributes=_wire(raw if raw is not None else json.dumps(attrs)),
            secrets=_wire(secrets),
            target_path=_wire(target_path),
            permission=_wire(permission),
        )


def _wire(text: str) -> str:
    """gRPC strings are UTF-8: a raw lone surrogate becomes its escape (JSON-escaped
    ones, which the daemon must refuse, pass as they are)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@pytest.fixture
def fuzz_backends(openbao: OpenBao, moto: str) -> Iterator[str]:
    import boto3

    openbao.api("POST", "secret/data/fuzz", {"data": {"k": VAULT_SECRET}})
    sm = boto3.client(
        "secretsmanager",
        endpoint_url=moto,
        region_name="us-east-1",
        aws_access_key_id="fuzz",
        aws_secret_access_key="fuzz",
    )
    with contextlib.suppress(sm.exceptions.ResourceExistsException):
        sm.create_secret(Name="fuzz-secret", SecretString=json.dumps({"k": AWS_SECRET}))
    server, url, _ = start_pod_identity_agent(
        {
            "AccessKeyId": "AKIAFUZZ",
            "SecretAccessKey": "fuzz",
            "Token": "fuzz-token",
            "Expiration": "2030-01-01T00:00:00Z",
        }
    )
    yield url
    server.shutdown()


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def tree(root: Path, skip: Path) -> set[str]:
    found: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == skip:
            dirnames.clear()
            continue
        found.update(os.path.join(dirpath, n) for n in filenames + dirnames)
    return found


@pytest.mark.parametrize("write_mode", ["driver", "provider"])
async def test_fuzzed_mounts(
    start_daemon: Callable[..., Daemon],
    tmp_path: Path,
    openbao: OpenBao,
    moto: str,
    signer: Signer,
    fuzz_backends: str,
    write_mode: str,
) -> None:
    names = ("csiprovider", "vault", "aws")
    daemon = start_daemon(
        "--write-mode",
        write_mode,
        "--mount-timeout",
        str(MOUNT_TIMEOUT),
        "--cache-ttl",
        "60",
        "--aws-pod-identity-endpoint",
        fuzz_backends,
        "--rotation-poll-interval",
        "1h",
        "--log-level",
        "info",
        "--kubelet-pods-dir",
        str(tmp_path / "targets"),
        names=names,
        extra_env={"AWS_ENDPOINT_URL": moto},
    )
    targets = tmp_path / "targets"  # the kubelet pods dir: provider mode writes there
    targets.mkdir()
    before = tree(tmp_path, targets)
    inputs = INPUTS // 2  # per write mode: both modes together make INPUTS
    base = seeds(openbao, signer)
    codes: Counter[str] = Counter()
    slowest = 0.0
    failures: list[str] = []
    channels = {n: grpc.aio.insecure_channel(f"unix://{daemon.socket(n)}") for n in names}
    stubs = {n: pb_grpc.CSIDriverProviderStub(c) for n, c in channels.items()}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for number in range(inputs):
        queue.put_nowait(number)

    async def worker() -> None:
        nonlocal slowest
        while not queue.empty():
            number = queue.get_nowait()
            name = names[number % 3]
            mutator = Mutator(f"{SEED}-{write_mode}-{number}")  # one input, reproducible
            attrs = {
                **mutator.random.choice(base[name]),
                "csi.storage.k8s.io/pod.name": "app-0",
                "csi.storage.k8s.io/pod.namespace": "default",
                "csi.storage.k8s.io/pod.uid": f"uid-{number % 50}",
                "csi.storage.k8s.io/serviceAccount.name": "app",
                "secretProviderClass": "fuzz",
            }
            target = pod_volume(targets, uid=f"uid-{number % 50}")
            request = mutator.request(name, attrs, target)
            started = time.monotonic()
            try:
                await stubs[name].Mount(request, timeout=CLIENT_TIMEOUT)
                code, details = grpc.StatusCode.OK, ""
            except grpc.aio.AioRpcError as exc:
                code, details = exc.code(), exc.details() or ""
            elapsed = time.monotonic() - started
            slowest = max(slowest, elapsed)
            codes[code.name] += 1
            where = f"seed {SEED} {write_mode} input {number} ({name})"
            # The daemon answers every Mount itself, by its own deadline: only a daemon that
            # ignored it leaves the client's (a minute later) to end the call. How long past
            # its deadline an answer arrives is the machine's business, not asserted here.
            own_deadline = code is grpc.StatusCode.DEADLINE_EXCEEDED and details in (
                "Deadline Exceeded",
                "Deadline exceeded",
            )
            if code in FORBIDDEN or own_deadline:
                failures.append(f"{where}: {code.name} {details[:300]!r}")
            if len(details) > 1024 or any(s in details for s in PLANTED):
                failures.append(f"{where}: error text leaks or is too long: {details[:300]!r}")

    started = time.monotonic()
    try:
        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    finally:
        for channel in channels.values():
            await channel.close()
    elapsed = time.monotonic() - started
    alive = daemon.proc.poll() is None
    rss = peak_rss_mib(daemon.proc.pid) if alive else 0.0
    figures = {
        "write_mode": write_mode,
        "inputs": inputs,
        "codes": dict(codes),
        "max_latency_s": round(slowest, 2),
        "seconds": round(elapsed, 1),
        "peak_rss_mib": round(rss, 1),
    }
    print(json.dumps(figures))
    assert alive, f"the daemon died: {daemon.log()[-2000:]}"
    assert not failures, "\n".join(failures[:20])
    assert rss < MAX_RSS_MIB, figures
    assert tree(tmp_path, targets) - before - {str(targets)} <= {
        str(p) for p in tmp_path.glob("daemon-*.log")
    }, "written outside the targets"
    assert sum(codes.values()) == inputs

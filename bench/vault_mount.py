"""Vault Mount latency: Mounts of 1, 5 and 20 KV objects through a running daemon against
a local OpenBao dev server, beside one direct hvac read of one secret, in one run.

Two daemons: `cold` with --cache-ttl 0 (every Mount reads every object from OpenBao) and
`republish` with the default cache (what kubelet's periodic republish of a pod costs).
Prints JSON with p50/p99 (ms) and the ratio Mount(20) / single read for each.

    python bench/vault_mount.py [--iterations N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import hvac

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stats import pct  # noqa: E402
from csiprovider.v1alpha1 import service_pb2 as pb  # noqa: E402
from csiprovider.v1alpha1 import service_pb2_grpc as pb_grpc  # noqa: E402
from tests.servers import (  # noqa: E402
    Signer,
    configure_openbao,
    openbao_server,
    start_kube_api,
    wait_until,
)


def run_daemon(
    work: Path, addr: str, token: str, cache_ttl: str, iterations: int
) -> dict[str, Any]:
    """Start a daemon serving `vault`, time Mounts of 1, 5 and 20 objects."""
    providers = work / "providers"
    daemon = subprocess.Popen(
        [sys.executable, "-m", "csiprovider", "serve", "--name", "vault",
         "--providers-dir", str(providers), "--health-addr", "", "--log-level", "warning",
         "--cache-ttl", cache_ttl, "--hmac-key-file", str(ROOT / "bench" / "bench-hmac.key")],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results: dict[str, Any] = {}
    try:
        sock = providers / "vault.sock"
        wait_until(sock.exists, "daemon socket")
        with grpc.insecure_channel(f"unix://{sock}") as channel:
            stub = pb_grpc.CSIDriverProviderStub(channel)
            for n in (1, 5, 20):
                objects = "".join(
                    f"- {{objectName: s{i}, secretPath: secret/data/bench/s{i}, "
                    "secretKey: value}\n" for i in range(n))
                request = pb.MountRequest(
                    attributes=json.dumps({
                        "roleName": "app", "vaultAddress": addr,
                        "vaultAuthMountPath": "jwt", "objects": objects,
                        "csi.storage.k8s.io/pod.name": "bench-0",
                        "csi.storage.k8s.io/pod.namespace": "default",
                        "csi.storage.k8s.io/pod.uid": "uid-bench",
                        "csi.storage.k8s.io/serviceAccount.name": "app",
                        "csi.storage.k8s.io/serviceAccount.tokens": json.dumps(
                            {"vault": {"token": token, "expirationTimestamp": ""}}),
                    }),
                    secrets="{}", target_path=str(work / "mnt"), permission="420")
                for _ in range(20):
                    stub.Mount(request, timeout=30)
                samples = []
                for _ in range(iterations):
                    start = time.perf_counter()
                    reply = stub.Mount(request, timeout=30)
                    samples.append(time.perf_counter() - start)
                    assert len(reply.files) == n
                results[f"mount_{n}"] = {"p50_ms": pct(samples, 0.5),
                                         "p99_ms": pct(samples, 0.99)}
    finally:
        daemon.terminate()
        daemon.wait(15)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300)
    args = parser.parse_args()
    signer = Signer()
    kube = start_kube_api(signer)
    with tempfile.TemporaryDirectory(prefix="csiprovider-vbench-") as tmp:
        work = Path(tmp)
        with openbao_server(work) as bao:
            configure_openbao(bao, signer, kube)
            for i in range(20):
                bao.api("POST", f"secret/data/bench/s{i}", {"data": {"value": f"v{i}" * 8}})
            token = signer.token("default", "app", ["vault"])
            results: dict[str, Any] = {}
            for mode, ttl in (("cold", "0"), ("republish", "60")):
                results[mode] = run_daemon(work / mode, bao.addr, token, ttl, args.iterations)
            client = hvac.Client(url=bao.addr, token="")
            login = client.auth.jwt.jwt_login(role="app", jwt=token, path="jwt")
            client.token = login["auth"]["client_token"]
            for _ in range(20):
                client.secrets.kv.v2.read_secret_version("bench/s0", raise_on_deleted_version=True)
            samples = []
            for _ in range(args.iterations):
                start = time.perf_counter()
                client.secrets.kv.v2.read_secret_version("bench/s0", raise_on_deleted_version=True)
                samples.append(time.perf_counter() - start)
            results["direct_hvac_read"] = {"p50_ms": pct(samples, 0.5),
                                           "p99_ms": pct(samples, 0.99)}
    assert kube.server is not None
    kube.server.shutdown()
    single = results["direct_hvac_read"]["p50_ms"]
    for mode in ("cold", "republish"):
        results[mode]["ratio_mount20_over_single_read_p50"] = round(
            results[mode]["mount_20"]["p50_ms"] / single, 2)
    results["target_ratio"] = 1.5
    print(json.dumps({"iterations": args.iterations, **results}, indent=2))


if __name__ == "__main__":
    main()

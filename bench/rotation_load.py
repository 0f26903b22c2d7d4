"""Load of a busy node: 100 pods of one service account, each with a 5-object Vault SPC
on a role bound only to that service account. Round 1 is every pod's first Mount (each
pod logs in itself and reads current data); later rounds are kubelet's republishes after
the cache TTL expired. Logins and reads per round (counted in OpenBao's audit log), Mount
p50/p99, and the daemon's RSS with 1,000 volumes tracked for rotation.

    python bench/rotation_load.py [--pods 100] [--cycles 3] [--volumes 1000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.memory import start, tracked_volumes  # noqa: E402
from bench.stats import pct  # noqa: E402
from csiprovider.v1alpha1 import service_pb2 as pb  # noqa: E402
from csiprovider.v1alpha1 import service_pb2_grpc as pb_grpc  # noqa: E402
from testkit.servers import (  # noqa: E402
    Signer,
    configure_openbao,
    openbao_server,
    start_kube_api,
    wait_until,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--volumes", type=int, default=1000)
    parser.add_argument(
        "--cache-ttl",
        type=float,
        default=2.0,
        help="short here so every cycle starts with an expired cache",
    )
    args = parser.parse_args()
    signer = Signer()
    kube = start_kube_api(signer)
    results: dict[str, Any] = {"pods": args.pods, "objects_per_pod": 5}
    with tempfile.TemporaryDirectory(prefix="csiprovider-rbench-") as name:
        tmp = Path(name)
        (tmp / "bao").mkdir()
        with openbao_server(tmp / "bao") as bao:
            configure_openbao(bao, signer, kube)
            for i in range(5):
                bao.api("POST", f"secret/data/load/s{i}", {"data": {"v": f"value-{i}"}})
            daemon, providers = start(
                tmp, "vault", "--name", "vault", "--cache-ttl", str(args.cache_ttl)
            )
            try:
                wait_until((providers / "vault.sock").exists, "daemon socket")
                objects = "".join(
                    f"- {{objectName: s{i}, secretPath: secret/data/load/s{i}, secretKey: v}}\n"
                    for i in range(5)
                )
                requests_ = [
                    pb.MountRequest(
                        attributes=json.dumps(
                            {
                                "roleName": "app",
                                "vaultAddress": bao.addr,
                                "vaultAuthMountPath": "jwt",
                                "objects": objects,
                                "secretProviderClass": "load",
                                "csi.storage.k8s.io/pod.name": f"app-{p}",
                                "csi.storage.k8s.io/pod.namespace": "default",
                                "csi.storage.k8s.io/pod.uid": f"uid-{p}",
                                "csi.storage.k8s.io/serviceAccount.name": "app",
                                "csi.storage.k8s.io/serviceAccount.tokens": json.dumps(
                                    {
                                        "vault": {
                                            "token": signer.token(
                                                "default",
                                                "app",
                                                ["vault"],
                                                pod=f"app-{p}",
                                                pod_uid=f"uid-{p}",
                                            ),
                                            "expirationTimestamp": "",
                                        }
                                    }
                                ),
                            }
                        ),
                        secrets="{}",
                        target_path=str(tmp / f"pod-{p}"),
                        permission="420",
                    )
                    for p in range(args.pods)
                ]
                rounds, latencies = [], []

                def reads() -> int:
                    return sum(bao.requests_to(f"secret/data/load/s{i}") for i in range(5))

                with grpc.insecure_channel(f"unix://{providers / 'vault.sock'}") as channel:
                    stub = pb_grpc.CSIDriverProviderStub(channel)
                    for cycle in range(args.cycles + 1):
                        if cycle:
                            time.sleep(args.cache_ttl + 0.2)  # kubelet's next republish round
                        before = (bao.requests_to("auth/jwt/login"), reads())
                        for req in requests_:
                            start_t = time.perf_counter()
                            stub.Mount(req, timeout=30)
                            if cycle:
                                latencies.append(time.perf_counter() - start_t)
                        rounds.append(
                            {
                                "round": "first mounts" if cycle == 0 else "republish",
                                "logins": bao.requests_to("auth/jwt/login") - before[0],
                                "reads": reads() - before[1],
                            }
                        )
                results["rounds"] = rounds
                results["anchor_reads_per_round"] = args.pods * 5
                results["republish_mount_p50_ms"] = pct(latencies, 0.5)
                results["republish_mount_p99_ms"] = pct(latencies, 0.99)
            finally:
                daemon.terminate()
                daemon.wait(15)
        # RSS with many tracked volumes: provider-writes mode, file backend (bench/memory.py).
        tracked = tracked_volumes(tmp, args.volumes)
        results["rss_mib_idle"] = round(tracked["rss_kib_start"] / 1024, 1)
        results[f"rss_mib_with_{args.volumes}_tracked_volumes"] = round(
            tracked["rss_kib"] / 1024, 1
        )
    assert kube.server is not None
    kube.server.shutdown()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

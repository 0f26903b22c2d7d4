"""Mount overhead: a 5-object file-backend Mount through a running daemon, beside the
bare reads of the same 5 files and a Version RPC (the gRPC round trip alone). Prints JSON:
p50/p99 latency (ms), Mounts/s, ratios (Mount p50 / Version p50: target <= 3x).

    python bench/mount_overhead.py [--iterations N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stats import pct  # noqa: E402
from csiprovider.v1alpha1 import service_pb2 as pb  # noqa: E402
from csiprovider.v1alpha1 import service_pb2_grpc as pb_grpc  # noqa: E402

OBJECTS = 5


def summary(samples: list[float], wall: float) -> dict[str, float]:
    return {
        "p50_ms": pct(samples, 0.50),
        "p99_ms": pct(samples, 0.99),
        "mean_ms": round(statistics.fmean(samples) * 1000, 3),
        "per_second": round(len(samples) / wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="csiprovider-bench-") as tmp:
        root = Path(tmp) / "secrets"
        (root / "default").mkdir(parents=True)
        files = []
        for i in range(OBJECTS):
            path = root / "default" / f"secret-{i}"
            path.write_bytes(os.urandom(256))
            files.append(path)
        providers = Path(tmp) / "providers"
        key = Path(tmp) / "hmac.key"
        key.write_text("bench-key-0123456789abcdef")
        daemon = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "csiprovider",
                "serve",
                "--providers-dir",
                str(providers),
                "--file-root",
                str(root),
                "--hmac-key-file",
                str(key),
                "--log-level",
                "warning",
                "--health-addr",
                "",
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            sock = providers / "csiprovider.sock"
            for _ in range(200):
                if sock.exists():
                    break
                time.sleep(0.05)
            objects = "".join(
                f"- {{objectName: secret-{i}, backend: file}}\n" for i in range(OBJECTS)
            )
            request = pb.MountRequest(
                attributes=json.dumps(
                    {
                        "csi.storage.k8s.io/pod.name": "bench-0",
                        "csi.storage.k8s.io/pod.namespace": "default",
                        "csi.storage.k8s.io/pod.uid": "uid",
                        "csi.storage.k8s.io/serviceAccount.name": "default",
                        "secretProviderClass": "bench",
                        "objects": objects,
                    }
                ),
                secrets="{}",
                target_path=str(Path(tmp) / "mnt"),
                permission="420",
            )
            with grpc.insecure_channel(f"unix://{sock}") as channel:
                stub = pb_grpc.CSIDriverProviderStub(channel)
                for _ in range(50):  # warm up
                    stub.Mount(request, timeout=10)

                def one_mount() -> float:
                    start = time.perf_counter()
                    reply = stub.Mount(request, timeout=10)
                    elapsed = time.perf_counter() - start
                    assert len(reply.files) == OBJECTS
                    return elapsed

                floor = []
                for _ in range(min(args.iterations, 1000)):
                    start = time.perf_counter()
                    stub.Version(pb.VersionRequest(version="v1alpha1"), timeout=10)
                    floor.append(time.perf_counter() - start)

                wall_start = time.perf_counter()
                with ThreadPoolExecutor(args.concurrency) as pool:
                    mounts = list(pool.map(lambda _: one_mount(), range(args.iterations)))
                mount_wall = time.perf_counter() - wall_start

                # Side by side on a noisy machine: Version and Mount alternated.
                paired_version, paired_mount = [], []
                for _ in range(min(args.iterations, 1000)):
                    start = time.perf_counter()
                    stub.Version(pb.VersionRequest(version="v1alpha1"), timeout=10)
                    paired_version.append(time.perf_counter() - start)
                    paired_mount.append(one_mount())
        finally:
            daemon.terminate()
            daemon.wait(15)

        def one_read() -> float:
            start = time.perf_counter()
            for path in files:
                with open(path, "rb") as handle:
                    handle.read()
            return time.perf_counter() - start

        wall_start = time.perf_counter()
        reads = [one_read() for _ in range(args.iterations)]
        read_wall = time.perf_counter() - wall_start

    mount_stats, read_stats = summary(mounts, mount_wall), summary(reads, read_wall)
    # The gRPC floor: a Version RPC on the same channel does no work in the daemon.
    ratio_version = round(pct(paired_mount, 0.5) / pct(paired_version, 0.5), 2)
    print(
        json.dumps(
            {
                "objects_per_mount": OBJECTS,
                "iterations": args.iterations,
                "concurrency": args.concurrency,
                "mount": mount_stats,
                "bare_reads": read_stats,
                "grpc_version_rpc_p50_ms": pct(floor, 0.5),
                "grpc_version_rpc_p99_ms": pct(floor, 0.99),
                "ratio_p50_mount_over_version_rpc": {
                    "value": ratio_version,
                    "target": 3.0,
                    "met": ratio_version <= 3.0,
                    "alternated_pairs": len(paired_mount),
                    "mount_p50_ms": pct(paired_mount, 0.5),
                    "version_p50_ms": pct(paired_version, 0.5),
                    "unpaired_ratio": round(mount_stats["p50_ms"] / pct(floor, 0.5), 2),
                },
                "ratio_p50_mount_over_reads": round(
                    mount_stats["p50_ms"] / read_stats["p50_ms"], 1
                ),
                "overhead_p50_ms": round(mount_stats["p50_ms"] - read_stats["p50_ms"], 3),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

"""AWS Mount latency and API calls: Mounts of 20 Secrets Manager objects and of 23 SSM
parameters through a running daemon against a local moto server, beside one direct
boto3 call; and the AWS calls a repeated Mount makes when nothing changed.

    python bench/aws_mount.py [--iterations N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
import grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stats import pct  # noqa: E402
from csiprovider.v1alpha1 import service_pb2 as pb  # noqa: E402
from csiprovider.v1alpha1 import service_pb2_grpc as pb_grpc  # noqa: E402
from testkit.servers import (  # noqa: E402
    Signer,
    moto_server,
    start_aws_proxy,
    start_kube_api,
    wait_until,
)


def timed(call: Any, iterations: int) -> dict[str, float]:
    for _ in range(10):
        call()
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return {"p50_ms": pct(samples, 0.5), "p99_ms": pct(samples, 0.99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=100)
    args = parser.parse_args()
    signer = Signer()
    kube = start_kube_api(signer)
    kube.service_accounts[("default", "app")] = {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/app"
    }
    results: dict[str, Any] = {"iterations": args.iterations}
    with moto_server() as moto, tempfile.TemporaryDirectory(prefix="csiprovider-abench-") as tmp:
        admin = {
            "endpoint_url": moto,
            "region_name": "us-east-1",
            "aws_access_key_id": "admin",
            "aws_secret_access_key": "admin",
        }
        sm = boto3.client("secretsmanager", **admin)  # type: ignore[call-overload]
        ssm = boto3.client("ssm", **admin)  # type: ignore[call-overload]
        for i in range(20):
            sm.create_secret(Name=f"bench/s{i}", SecretString=f"value-{i}" * 4)
        for i in range(23):
            ssm.put_parameter(Name=f"/bench/p{i}", Value=f"value-{i}", Type="String")
        proxy = start_aws_proxy(moto)
        token = signer.token("default", "app", ["sts.amazonaws.com"])

        def request(objects: str) -> pb.MountRequest:
            return pb.MountRequest(
                attributes=json.dumps(
                    {
                        "region": "us-east-1",
                        "objects": objects,
                        "csi.storage.k8s.io/pod.name": "bench-0",
                        "csi.storage.k8s.io/pod.namespace": "default",
                        "csi.storage.k8s.io/pod.uid": "uid-bench",
                        "csi.storage.k8s.io/serviceAccount.name": "app",
                        "csi.storage.k8s.io/serviceAccount.tokens": json.dumps(
                            {"sts.amazonaws.com": {"token": token, "expirationTimestamp": ""}}
                        ),
                    }
                ),
                secrets="{}",
                target_path=str(Path(tmp) / "mnt"),
                permission="420",
            )

        sm20 = request(
            "".join(
                f"- {{objectName: bench/s{i}, objectType: secretsmanager}}\n" for i in range(20)
            )
        )
        ssm23 = request(
            "".join(f"- {{objectName: /bench/p{i}, objectType: ssmparameter}}\n" for i in range(23))
        )

        def daemon(name: str, ttl: str, endpoint: str) -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "csiprovider",
                    "serve",
                    "--name",
                    "aws",
                    "--providers-dir",
                    str(Path(tmp) / name),
                    "--health-addr",
                    "",
                    "--log-level",
                    "warning",
                    "--cache-ttl",
                    ttl,
                    "--kube-api-url",
                    kube.url,
                    "--hmac-key-file",
                    str(ROOT / "bench" / "bench-hmac.key"),
                ],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env={**os.environ, "AWS_ENDPOINT_URL": endpoint},
            )

        for mode, ttl in (("cold", "0"), ("republish", "60")):
            section: dict[str, Any] = {}
            # Latency against moto itself; API calls counted through a proxy in front of it.
            for phase, endpoint in (("latency", moto), ("calls", proxy.url)):
                proc = daemon(f"{mode}-{phase}", ttl, endpoint)
                try:
                    sock = Path(tmp) / f"{mode}-{phase}" / "aws.sock"
                    wait_until(sock.exists, "daemon socket")
                    with grpc.insecure_channel(f"unix://{sock}") as channel:
                        stub = pb_grpc.CSIDriverProviderStub(channel)
                        if phase == "latency":
                            section["mount_20_secretsmanager"] = timed(
                                lambda s=stub: s.Mount(sm20, timeout=60), args.iterations
                            )
                            section["mount_23_ssm"] = timed(
                                lambda s=stub: s.Mount(ssm23, timeout=60), args.iterations
                            )
                            continue
                        stub.Mount(sm20, timeout=60)
                        before = len(proxy.calls)
                        for _ in range(10):
                            stub.Mount(sm20, timeout=60)
                        made = proxy.calls[before:]
                        section["api_calls_per_repeated_mount_20_secrets"] = {
                            op: sum(1 for o, _ in made if o == op) / 10
                            for op in sorted({o for o, _ in made})
                        } or {"none": 0}
                finally:
                    proc.terminate()
                    proc.wait(15)
            results[mode] = section
        results["direct_boto3_get_secret_value"] = timed(
            lambda: sm.get_secret_value(SecretId="bench/s0"), args.iterations
        )
        results["direct_boto3_get_parameters_10"] = timed(
            lambda: ssm.get_parameters(Names=[f"/bench/p{i}" for i in range(10)]), args.iterations
        )
        single = results["direct_boto3_get_secret_value"]["p50_ms"]
        for mode in ("cold", "republish"):
            results[mode]["ratio_mount20_sm_over_direct_call_p50"] = round(
                results[mode]["mount_20_secretsmanager"]["p50_ms"] / single, 2
            )
        proxy.server.shutdown()
    assert kube.server is not None
    kube.server.shutdown()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

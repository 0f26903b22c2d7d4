"""Daemon memory and start-up: resident set size (VmRSS, and its peak VmHWM, from
/proc/<pid>/status) of a real `python -m csiprovider serve` subprocess, against the
256 MiB limit of the DaemonSet.

  * idle: a file-only daemon (--file-root) and a daemon serving `vault` (no Mount yet),
    measured 1 s after the socket appeared; time from process start to socket-ready
    (and to the first answered Version RPC); medians of --starts starts each;
  * 1,000 tracked volumes: provider-writes mode, file backend (what rotation re-resolves);
  * 10,000 file Mounts in driver mode, every one a distinct pod UID and target path;
  * per extra AWS identity: a daemon serving `aws` against moto (AWS_ENDPOINT_URL) with IRSA
    through the Kubernetes API stand-in, each service account annotated with its own role
    ARN (its own authorization class, so its own boto3 clients); one Secrets Manager and one
    SSM object mounted for 1, then 50 identities.

Figures print as {"value": ..., "target": ..., "met": bool}; nothing is asserted.

    python bench/memory.py [--starts 3] [--volumes 1000] [--mounts 10000] [--identities 50]
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
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stats import MIB, mib, proc_status, stop  # noqa: E402
from csiprovider.v1alpha1 import service_pb2 as pb  # noqa: E402
from csiprovider.v1alpha1 import service_pb2_grpc as pb_grpc  # noqa: E402
from testkit.requests import pod_volume  # noqa: E402
from testkit.servers import Signer, moto_server, start_kube_api, wait_until  # noqa: E402


def rss_kib(pid: int) -> int:
    return proc_status(pid).get("VmRSS", 0)


def figure(value: float, target: float | None, unit: str, **extra: Any) -> dict[str, Any]:
    """A printed figure: lower is better; `met` when at or under the target."""
    out: dict[str, Any] = {"value": value, "unit": unit}
    if target is not None:
        out.update(target=target, met=value <= target)
    out.update(extra)
    return out


def start(
    tmp: Path, name: str, *extra: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], Path]:
    """A daemon subprocess serving into tmp/name/ (the providers directory)."""
    providers = tmp / name
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "csiprovider",
            "serve",
            "--providers-dir",
            str(providers),
            "--health-addr",
            "",
            "--log-level",
            "warning",
            "--hmac-key-file",
            str(ROOT / "bench" / "bench-hmac.key"),
            *extra,
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    return proc, providers


# ---------------------------------------------------------------- idle and start-up


def timed_start(tmp: Path, name: str, sock_name: str, *extra: str) -> dict[str, float]:
    """Start a daemon; seconds to socket file and first Version answer; RSS 1 s later."""
    t0 = time.perf_counter()
    proc, providers = start(tmp, name, *extra)
    sock = providers / sock_name
    try:
        while not sock.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {proc.returncode}")
            if time.perf_counter() - t0 > 30:
                raise RuntimeError("timed out waiting for the daemon socket")
            time.sleep(0.002)
        socket_ready = time.perf_counter() - t0
        with grpc.insecure_channel(f"unix://{sock}") as channel:
            pb_grpc.CSIDriverProviderStub(channel).Version(
                pb.VersionRequest(version="v1alpha1"), timeout=10, wait_for_ready=True
            )
        first_rpc = time.perf_counter() - t0
        time.sleep(max(0.0, socket_ready + 1.0 - (time.perf_counter() - t0)))
        status = proc_status(proc.pid)
        return {
            "socket_ready_s": socket_ready,
            "first_version_rpc_s": first_rpc,
            "rss_kib": status["VmRSS"],
            "hwm_kib": status["VmHWM"],
        }
    finally:
        stop(proc)


def idle(tmp: Path, starts: int) -> dict[str, Any]:
    (tmp / "idle-files" / "default").mkdir(parents=True)
    kinds = {
        "file_only": ("csiprovider.sock", ("--file-root", str(tmp / "idle-files")), 45),
        "vault": ("vault.sock", ("--name", "vault"), 55),
    }
    out: dict[str, Any] = {}
    for kind, (sock, extra, target) in kinds.items():
        runs = [timed_start(tmp, f"idle-{kind}-{i}", sock, *extra) for i in range(starts)]
        ready = statistics.median(r["socket_ready_s"] for r in runs)
        out[f"idle_rss_{kind}"] = figure(
            mib(statistics.median(r["rss_kib"] for r in runs)),
            target,
            "MiB",
            hwm_mib=mib(statistics.median(r["hwm_kib"] for r in runs)),
            samples_mib=[mib(r["rss_kib"]) for r in runs],
        )
        out[f"start_to_socket_ready_{kind}"] = figure(
            round(ready, 3),
            0.5,
            "s",
            first_version_rpc_s=round(statistics.median(r["first_version_rpc_s"] for r in runs), 3),
            samples_s=[round(r["socket_ready_s"], 3) for r in runs],
        )
    # Context: what the interpreter holds bare and after some imports, and how long from
    # process start until those imports are done (median of `starts`).
    probes = (
        ("python_bare", "pass"),
        ("import_grpc", "import grpc"),
        ("import_boto3", "import boto3"),
        ("import_hvac", "import hvac"),
        ("import_csiprovider_server", "import csiprovider.server"),
    )
    context: dict[str, Any] = {}
    for label, code in probes:
        rss, took = [], []
        for _ in range(starts):
            t0 = time.perf_counter()
            probe = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    f"{code}\nimport time\nprint(1, flush=True)\ntime.sleep(30)",
                ],
                stdout=subprocess.PIPE,
                cwd=ROOT,
            )
            assert probe.stdout is not None
            probe.stdout.readline()
            took.append(time.perf_counter() - t0)
            rss.append(rss_kib(probe.pid))
            probe.kill()
            probe.wait()
        context[label] = {
            "rss_mib": mib(statistics.median(rss)),
            "start_to_imported_s": round(statistics.median(took), 3),
        }
    out["context_python_imports"] = context
    return out


# ---------------------------------------------------------------- tracked volumes


def tracked_volumes(tmp: Path, volumes: int) -> dict[str, Any]:
    """RSS of a provider-writes daemon (file backend, 5 objects) tracking `volumes` volumes
    for rotation. Also used by bench/rotation_load.py."""
    secrets = tmp / "tracked-files" / "default"
    secrets.mkdir(parents=True)
    for i in range(5):
        (secrets / f"s{i}").write_text(f"value-{i}")
    pods = tmp / "tracked-volumes"  # the kubelet pods dir: provider mode writes there only
    daemon, providers = start(
        tmp,
        "tracked",
        "--write-mode",
        "provider",
        "--file-root",
        str(tmp / "tracked-files"),
        "--kubelet-pods-dir",
        str(pods),
    )
    try:
        wait_until((providers / "csiprovider.sock").exists, "daemon socket")
        objects = "".join(f"- {{objectName: s{i}, backend: file}}\n" for i in range(5))
        with grpc.insecure_channel(f"unix://{providers / 'csiprovider.sock'}") as channel:
            stub = pb_grpc.CSIDriverProviderStub(channel)
            stub.Version(pb.VersionRequest(version="v1alpha1"), timeout=10, wait_for_ready=True)
            rss_start = rss_kib(daemon.pid)
            t0 = time.perf_counter()
            for v in range(volumes):
                target = pod_volume(pods, uid=f"u{v}")
                stub.Mount(
                    pb.MountRequest(
                        attributes=json.dumps(
                            {
                                "objects": objects,
                                "csi.storage.k8s.io/pod.namespace": "default",
                                "csi.storage.k8s.io/pod.name": f"p{v}",
                                "csi.storage.k8s.io/pod.uid": f"u{v}",
                            }
                        ),
                        secrets="{}",
                        target_path=str(target),
                        permission="420",
                    ),
                    timeout=30,
                )
            mounting = time.perf_counter() - t0
            time.sleep(1.5)
            status = proc_status(daemon.pid)
    finally:
        stop(daemon)
    return {
        "volumes": volumes,
        "rss_kib_start": rss_start,
        "rss_kib": status["VmRSS"],
        "hwm_kib": status["VmHWM"],
        "mount_seconds": round(mounting, 1),
    }


# ---------------------------------------------------------------- many driver-mode Mounts


def many_mounts(tmp: Path, mounts: int) -> dict[str, Any]:
    """RSS after `mounts` file Mounts in driver mode, each a new pod UID and target path."""
    secrets = tmp / "many-files" / "default"
    secrets.mkdir(parents=True)
    for i in range(5):
        (secrets / f"s{i}").write_bytes(os.urandom(256))
    daemon, providers = start(tmp, "many", "--file-root", str(tmp / "many-files"))
    objects = "".join(f"- {{objectName: s{i}, backend: file}}\n" for i in range(5))
    try:
        wait_until((providers / "csiprovider.sock").exists, "daemon socket")
        with grpc.insecure_channel(f"unix://{providers / 'csiprovider.sock'}") as channel:
            stub = pb_grpc.CSIDriverProviderStub(channel)
            stub.Version(pb.VersionRequest(version="v1alpha1"), timeout=10, wait_for_ready=True)
            rss_start = rss_kib(daemon.pid)
            checkpoints: dict[int, int] = {}

            def one(v: int) -> None:
                uid = f"{v:08x}-0000-4000-8000-{v:012x}"
                reply = stub.Mount(
                    pb.MountRequest(
                        attributes=json.dumps(
                            {
                                "objects": objects,
                                "secretProviderClass": "many",
                                "csi.storage.k8s.io/pod.namespace": "default",
                                "csi.storage.k8s.io/pod.name": f"app-{v}",
                                "csi.storage.k8s.io/pod.uid": uid,
                                "csi.storage.k8s.io/serviceAccount.name": "default",
                            }
                        ),
                        secrets="{}",
                        permission="420",
                        target_path=f"/var/lib/kubelet/pods/{uid}/volumes/kubernetes.io~csi/"
                        "secrets/mount",
                    ),
                    timeout=30,
                )
                assert len(reply.files) == 5

            t0 = time.perf_counter()
            step = max(1, mounts // 4)
            with ThreadPoolExecutor(4) as pool:
                for begin in range(0, mounts, step):
                    list(pool.map(one, range(begin, min(mounts, begin + step))))
                    checkpoints[min(mounts, begin + step)] = rss_kib(daemon.pid)
            mounting = time.perf_counter() - t0
            time.sleep(1.0)
            status = proc_status(daemon.pid)
    finally:
        stop(daemon)
    return {
        "mounts": mounts,
        "rss_kib_start": rss_start,
        "rss_kib": status["VmRSS"],
        "hwm_kib": status["VmHWM"],
        "mount_seconds": round(mounting, 1),
        "rss_mib_after_n_mounts": {n: mib(k) for n, k in checkpoints.items()},
    }


# ---------------------------------------------------------------- AWS identities


def aws_identities(tmp: Path, identities: int) -> dict[str, Any]:
    import boto3

    signer = Signer()
    kube = start_kube_api(signer)
    account = "123456789012"
    for i in range(identities):
        kube.service_accounts[("default", f"sa-{i}")] = {
            "eks.amazonaws.com/role-arn": f"arn:aws:iam::{account}:role/bench-role-{i}"
        }
    try:
        with moto_server() as moto:
            admin = {
                "endpoint_url": moto,
                "region_name": "us-east-1",
                "aws_access_key_id": "admin",
                "aws_secret_access_key": "admin",
            }
            boto3.client("secretsmanager", **admin).create_secret(  # type: ignore[call-overload]
                Name="bench/mem", SecretString="s3cret-value"
            )
            boto3.client("ssm", **admin).put_parameter(  # type: ignore[call-overload]
                Name="/bench/mem", Value="parameter-value", Type="String"
            )
            env = {
                k: v
                for k, v in os.environ.items()
                if k
                not in (
                    "AWS_ACCESS_KEY_ID",
                    "AWS_SECRET_ACCESS_KEY",
                    "AWS_PROFILE",
                    "AWS_REGION",
                    "AWS_DEFAULT_REGION",
                    "AWS_SESSION_TOKEN",
                )
            }
            env["AWS_ENDPOINT_URL"] = moto
            daemon, providers = start(
                tmp, "aws", "--name", "aws", "--kube-api-url", kube.url, env=env
            )
            objects = (
                "- {objectName: bench/mem, objectType: secretsmanager}\n"
                "- {objectName: /bench/mem, objectType: ssmparameter}\n"
            )

            def request(sa: str, pod: int) -> pb.MountRequest:
                uid = f"{sa}-pod-{pod}"
                token = signer.token(
                    "default", sa, ["sts.amazonaws.com"], pod=f"app-{uid}", pod_uid=uid
                )
                return pb.MountRequest(
                    attributes=json.dumps(
                        {
                            "region": "us-east-1",
                            "objects": objects,
                            "secretProviderClass": "mem",
                            "csi.storage.k8s.io/pod.name": f"app-{uid}",
                            "csi.storage.k8s.io/pod.namespace": "default",
                            "csi.storage.k8s.io/pod.uid": uid,
                            "csi.storage.k8s.io/serviceAccount.name": sa,
                            "csi.storage.k8s.io/serviceAccount.tokens": json.dumps(
                                {
                                    "sts.amazonaws.com": {
                                        "token": token,
                                        "expirationTimestamp": "2030-01-01T00:00:00Z",
                                    }
                                }
                            ),
                        }
                    ),
                    secrets="{}",
                    permission="420",
                    target_path=f"/var/lib/kubelet/pods/{uid}/volumes/secrets",
                )

            try:
                wait_until((providers / "aws.sock").exists, "daemon socket")
                first: list[float] = []
                second: list[float] = []
                curve: dict[int, float] = {}
                with grpc.insecure_channel(f"unix://{providers / 'aws.sock'}") as channel:
                    stub = pb_grpc.CSIDriverProviderStub(channel)
                    stub.Version(
                        pb.VersionRequest(version="v1alpha1"), timeout=10, wait_for_ready=True
                    )
                    rss_idle = rss_kib(daemon.pid)
                    rss_1 = 0
                    for i in range(identities):
                        sa = f"sa-{i}"
                        # First Mount of a new identity (STS exchange + new boto3 clients),
                        # then a second pod of the same identity (STS exchange, clients reused).
                        for pod, samples in ((0, first), (1, second)):
                            req = request(sa, pod)
                            t0 = time.perf_counter()
                            reply = stub.Mount(req, timeout=60)
                            samples.append(time.perf_counter() - t0)
                            assert len(reply.files) == 2, reply
                        if i == 0:
                            time.sleep(1.0)
                            rss_1 = rss_kib(daemon.pid)
                            curve[1] = mib(rss_1)
                        elif (i + 1) in (10, 25) or i + 1 == identities:
                            curve[i + 1] = mib(rss_kib(daemon.pid))
                    time.sleep(1.0)
                    status = proc_status(daemon.pid)
            finally:
                stop(daemon)
    finally:
        assert kube.server is not None
        kube.server.shutdown()
    per_identity = (status["VmRSS"] - rss_1) / max(1, identities - 1)
    # The first identity also pays the one-off loading of both service models.
    return {
        "identities": identities,
        "rss_mib_idle_before_first_mount": mib(rss_idle),
        "rss_mib_1_identity": mib(rss_1),
        f"rss_mib_{identities}_identities": mib(status["VmRSS"]),
        "hwm_mib": mib(status["VmHWM"]),
        "rss_mib_by_identities": curve,
        "per_identity_mib": round(per_identity / MIB, 3),
        "per_identity_service_mib": round(per_identity / 2 / MIB, 3),
        "first_mount_new_identity_p50_ms": round(statistics.median(first) * 1000, 1),
        "first_mount_of_first_identity_ms": round(first[0] * 1000, 1),
        "second_pod_same_identity_p50_ms": round(statistics.median(second) * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--volumes", type=int, default=1000)
    parser.add_argument("--mounts", type=int, default=10000)
    parser.add_argument("--identities", type=int, default=50)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="csiprovider-mbench-") as name:
        tmp = Path(name)
        t0 = time.perf_counter()
        results.update(idle(tmp, args.starts))
        timings["idle_and_start"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        tracked = tracked_volumes(tmp, args.volumes)
        timings["tracked_volumes"] = time.perf_counter() - t0
        results[f"rss_with_{args.volumes}_tracked_volumes"] = figure(
            mib(tracked["rss_kib"]),
            80,
            "MiB",
            hwm_mib=mib(tracked["hwm_kib"]),
            rss_mib_before_first_mount=mib(tracked["rss_kib_start"]),
            mount_seconds=tracked["mount_seconds"],
        )

        t0 = time.perf_counter()
        many = many_mounts(tmp, args.mounts)
        timings["driver_mounts"] = time.perf_counter() - t0
        results[f"rss_after_{args.mounts}_driver_mode_file_mounts"] = figure(
            mib(many["rss_kib"]),
            None,
            "MiB",
            hwm_mib=mib(many["hwm_kib"]),
            rss_mib_before_first_mount=mib(many["rss_kib_start"]),
            rss_mib_after_n_mounts=many["rss_mib_after_n_mounts"],
            mount_seconds=many["mount_seconds"],
            distinct_pod_uids_and_targets=args.mounts,
        )

        t0 = time.perf_counter()
        aws = aws_identities(tmp, args.identities)
        timings["aws_identities"] = time.perf_counter() - t0
        results["aws_rss_per_extra_identity_x_service"] = figure(
            aws.pop("per_identity_service_mib"),
            1.0,
            "MiB",
            per_identity_mib=aws.pop("per_identity_mib"),
            services_per_identity=["secretsmanager", "ssm"],
        )
        results["aws_identities"] = aws
    results["section_seconds"] = {k: round(v, 1) for k, v in timings.items()}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

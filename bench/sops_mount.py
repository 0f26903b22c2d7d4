"""sops Mount latency and memory: `backend: sops` objects through a running daemon, beside
`sops decrypt` of the same file as a subprocess (what an init container does today) and a
file-backend Mount of the same values as plain files, interleaved in one run.

The document: YAML, 20 keys of 32-character values, encrypted by the real sops binary for
one age recipient; the pod's age identity goes in the request's `secrets` (`sops-age-key`).

  * mount_1_object_path: one object, the whole document, read from the file backend
    (`path:`); mount_1_object_inline: the same document inline in the SPC (`document:`);
  * mount_20_objects_jmespath: 20 objects of the same `path:`, each picking one value with
    `jmesPath` (the objects of a Mount share one decrypt);
  * sops_cli_decrypt: `sops decrypt FILE` with SOPS_AGE_KEY, as a subprocess;
  * file_mount_20_objects: 20 file-backend objects, the same values as plain files.

Each iteration runs all five once, in a shuffled order. Ratios of p50s: sops Mount over
sops CLI (target < 1.0: the daemon decrypts faster than spawning sops), sops 20-object
Mount over file 20-object Mount (no target).

Memory, on a daemon of its own: VmRSS (/proc/<pid>/status) after start-up, after the
first sops Mount and after --mounts sops Mounts, each a different pod (UID, name and
target path), cycling through --identities age identities (pyrage), the document
encrypted for all of them. Target: growth from the first Mount to the last < 20 MiB.

    python bench/sops_mount.py [--iterations N] [--mounts N] [--identities N]
                               [--concurrency C] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pyrage
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stats import mib, pct, proc_status, stop  # noqa: E402
from csiprovider.v1alpha1 import service_pb2 as pb  # noqa: E402
from csiprovider.v1alpha1 import service_pb2_grpc as pb_grpc  # noqa: E402
from testkit import sops  # noqa: E402
from testkit.servers import wait_until  # noqa: E402

KEYS = 20
RSS_TARGET_MIB = 20.0


def latency(samples: list[float]) -> dict[str, float]:
    return {"p50_ms": pct(samples, 0.5), "p99_ms": pct(samples, 0.99)}


def figure(value: float, target: float | None, **extra: Any) -> dict[str, Any]:
    """A printed figure: lower is better; `met` when under the target."""
    out: dict[str, Any] = {"value": value}
    if target is not None:
        out.update(target=target, met=value < target)
    out.update(extra)
    return out


def start(work: Path, root: Path) -> tuple[subprocess.Popen[bytes], Any, Any]:
    """A daemon with the file backend on `root`; (process, channel, stub), ready."""
    providers = work / "providers"
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
            str(ROOT / "bench" / "bench-hmac.key"),
            "--log-level",
            "warning",
            "--health-addr",
            "",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sock = providers / "csiprovider.sock"
    try:
        wait_until(sock.exists, "daemon socket")
        channel = grpc.insecure_channel(f"unix://{sock}")
        stub = pb_grpc.CSIDriverProviderStub(channel)
        stub.Version(pb.VersionRequest(version="v1alpha1"), timeout=10, wait_for_ready=True)
    except BaseException:
        stop(daemon)
        raise
    return daemon, channel, stub


def request(
    objects: list[dict[str, Any]], identity: str | None, pod: int, target: str
) -> pb.MountRequest:
    """A Mount of pod `pod` (its own name and UID) in namespace default."""
    uid = f"{pod:08x}-0000-4000-8000-{pod:012x}"
    return pb.MountRequest(
        attributes=json.dumps(
            {
                "csi.storage.k8s.io/pod.name": f"app-{pod}",
                "csi.storage.k8s.io/pod.namespace": "default",
                "csi.storage.k8s.io/pod.uid": uid,
                "csi.storage.k8s.io/serviceAccount.name": "app",
                "secretProviderClass": "bench",
                "objects": yaml.safe_dump(objects, sort_keys=False),
            }
        ),
        secrets=json.dumps({"sops-age-key": identity} if identity else {}),
        target_path=target,
        permission="420",
    )


def new_identity() -> tuple[str, str]:
    """(AGE-SECRET-KEY-1..., age1...) from pyrage."""
    identity = pyrage.x25519.Identity.generate()
    return str(identity), str(identity.to_public())


# ---------------------------------------------------------------- latency, interleaved


def latencies(
    tmp: Path, root: Path, values: dict[str, str], identity: str, iterations: int, seed: int
) -> dict[str, Any]:
    sops_file = root / "default" / "sops" / "app.yaml"
    document = sops_file.read_text()
    target = str(tmp / "lat" / "mnt")
    whole_path = request(
        [{"objectName": "app", "backend": "sops", "path": "sops/app.yaml"}], identity, 0, target
    )
    whole_inline = request(
        [{"objectName": "app", "backend": "sops", "document": document}], identity, 0, target
    )
    picked = request(
        [
            {"objectName": k, "backend": "sops", "path": "sops/app.yaml", "jmesPath": k}
            for k in values
        ],
        identity,
        0,
        target,
    )
    plain = request(
        [{"objectName": k, "backend": "file", "path": f"plain/{k}"} for k in values],
        None,
        0,
        target,
    )
    cli = [str(sops.sops_bin()), "decrypt", str(sops_file)]
    cli_env = {**os.environ, "SOPS_AGE_KEY": identity}
    expected = {k: v.encode() for k, v in values.items()}

    daemon, channel, stub = start(tmp / "lat", root)
    try:

        def check(reply: Any, name: str) -> None:
            files = {f.path: f.contents for f in reply.files}
            if name.startswith("mount_1"):
                assert yaml.safe_load(files["app"]) == values, name
            else:
                assert files == expected, name

        def mount(req: pb.MountRequest, name: str) -> Callable[[], float]:
            def run() -> float:
                t0 = time.perf_counter()
                reply = stub.Mount(req, timeout=30)
                took = time.perf_counter() - t0
                check(reply, name)
                return took

            return run

        def decrypt_cli() -> float:
            t0 = time.perf_counter()
            done = subprocess.run(cli, env=cli_env, capture_output=True, check=False)
            took = time.perf_counter() - t0
            assert done.returncode == 0, done.stderr.decode()[-2000:]
            assert yaml.safe_load(done.stdout) == values
            return took

        runs: dict[str, Callable[[], float]] = {
            "mount_1_object_path": mount(whole_path, "mount_1_object_path"),
            "mount_1_object_inline": mount(whole_inline, "mount_1_object_inline"),
            "mount_20_objects_jmespath": mount(picked, "mount_20_objects_jmespath"),
            "file_mount_20_objects": mount(plain, "file_mount_20_objects"),
            "sops_cli_decrypt": decrypt_cli,
        }
        for _ in range(5):  # warm up: lazy imports, the dialect, page cache
            for run in runs.values():
                run()
        samples: dict[str, list[float]] = {name: [] for name in runs}
        order = list(runs)
        shuffle = random.Random(seed)
        t0 = time.perf_counter()
        for _ in range(iterations):
            shuffle.shuffle(order)
            for name in order:
                samples[name].append(runs[name]())
        wall = time.perf_counter() - t0
        channel.close()
    finally:
        stop(daemon)

    out: dict[str, Any] = {name: latency(s) for name, s in samples.items()}
    p50 = {name: out[name]["p50_ms"] for name in out}
    cli_ratio = round(p50["mount_1_object_path"] / p50["sops_cli_decrypt"], 3)
    out["ratios_p50"] = {
        "sops_mount_over_sops_cli": figure(
            cli_ratio,
            1.0,
            mount="mount_1_object_path",
            inline_document=round(p50["mount_1_object_inline"] / p50["sops_cli_decrypt"], 3),
            mount_20_objects_jmespath=round(
                p50["mount_20_objects_jmespath"] / p50["sops_cli_decrypt"], 3
            ),
        ),
        "sops_20_object_mount_over_file_20_object_mount": round(
            p50["mount_20_objects_jmespath"] / p50["file_mount_20_objects"], 3
        ),
        "sops_20_object_mount_over_sops_1_object_mount": round(
            p50["mount_20_objects_jmespath"] / p50["mount_1_object_path"], 3
        ),
    }
    out["interleaved_iterations"] = iterations
    out["seconds"] = round(wall, 1)
    return out


# ---------------------------------------------------------------- memory


def memory(
    tmp: Path, root: Path, identities: list[str], mounts: int, concurrency: int
) -> dict[str, Any]:
    """RSS of a fresh daemon: idle, after its first sops Mount, after `mounts` of them,
    every one a different pod, the identities used in turn."""
    objects = [{"objectName": "app", "backend": "sops", "path": "sops/app-many.yaml"}]
    daemon, channel, stub = start(tmp / "mem", root)
    curve: dict[int, float] = {}
    try:
        time.sleep(1.0)
        idle = proc_status(daemon.pid)["VmRSS"]

        def one(pod: int) -> None:
            uid_dir = f"/var/lib/kubelet/pods/{pod:08x}/volumes/kubernetes.io~csi/app/mount"
            reply = stub.Mount(
                request(objects, identities[pod % len(identities)], pod, uid_dir), timeout=30
            )
            assert len(reply.files) == 1 and reply.files[0].contents

        one(0)
        time.sleep(1.0)
        first = proc_status(daemon.pid)["VmRSS"]
        curve[1] = mib(first)
        t0 = time.perf_counter()
        step = max(1, mounts // 4)
        with ThreadPoolExecutor(concurrency) as pool:
            for begin in range(1, mounts, step):
                end = min(mounts, begin + step)
                list(pool.map(one, range(begin, end)))
                curve[end] = mib(proc_status(daemon.pid)["VmRSS"])
        took = time.perf_counter() - t0
        time.sleep(1.0)
        status = proc_status(daemon.pid)
        channel.close()
    finally:
        stop(daemon)
    growth = mib(status["VmRSS"] - first)
    return {
        "mounts": mounts,
        "distinct_pods_and_targets": mounts,
        "age_identities_cycled": len(identities),
        "recipients_of_the_document": len(identities),
        "concurrency": concurrency,
        "rss_mib_after_start": mib(idle),
        "rss_mib_after_first_sops_mount": mib(first),
        f"rss_mib_after_{mounts}_sops_mounts": mib(status["VmRSS"]),
        "hwm_mib": mib(status["VmHWM"]),
        "rss_mib_by_mounts": curve,
        "growth_mib_first_to_last_mount": figure(growth, RSS_TARGET_MIB, unit="MiB"),
        "growth_mib_start_to_last_mount": mib(status["VmRSS"] - idle),
        "mounts_per_second": round((mounts - 1) / took, 1) if took else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--iterations", type=int, default=300, help="interleaved rounds of the five measurements"
    )
    parser.add_argument(
        "--mounts",
        type=int,
        default=1000,
        help="sops Mounts of distinct pods for the memory figure",
    )
    parser.add_argument(
        "--identities",
        type=int,
        default=10,
        help="age identities (and recipients) cycled by those Mounts",
    )
    parser.add_argument(
        "--concurrency", type=int, default=4, help="Mounts in flight at once for the memory figure"
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="csiprovider-sbench-") as name:
        tmp = Path(name)
        root = tmp / "secrets"
        (root / "default" / "sops").mkdir(parents=True)
        (root / "default" / "plain").mkdir()
        values = {f"secret_{i:02d}": secrets.token_urlsafe(24) for i in range(KEYS)}
        for key, value in values.items():
            (root / "default" / "plain" / key).write_text(value)
        plain = yaml.safe_dump(values, sort_keys=False).encode()
        one, recipient = new_identity()
        (root / "default" / "sops" / "app.yaml").write_text(
            sops.encrypt(plain, "yaml", [recipient])
        )
        many = [new_identity() for _ in range(args.identities)]
        (root / "default" / "sops" / "app-many.yaml").write_text(
            sops.encrypt(plain, "yaml", [r for _, r in many])
        )

        version = (
            subprocess.run(
                [str(sops.sops_bin()), "--version", "--disable-version-check"],
                capture_output=True,
                text=True,
                check=False,
            )
            .stdout.split("\n")[0]
            .strip()
        )
        results: dict[str, Any] = {
            "document": {
                "format": "yaml",
                "keys": KEYS,
                "value_bytes": 32,
                "encrypted_bytes": (root / "default" / "sops" / "app.yaml").stat().st_size,
                "age_recipients": 1,
            },
            "sops_binary": version,
        }
        results["latency"] = latencies(tmp, root, values, one, args.iterations, args.seed)
        results["memory"] = memory(tmp, root, [i for i, _ in many], args.mounts, args.concurrency)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

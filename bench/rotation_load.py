"""Calls per volume per hour to Vault under driver v1.6 rotation, in both write modes.

Since v1.6 the driver rotates through kubelet's periodic republish: kubelet calls
NodePublishVolume for every volume about every 60-90 s, and with rotation on the driver
calls Mount once the target is older than its --rotation-poll-interval (2 min). A
provider-writes daemon also rotates on its own (--rotation-poll-interval, 2 min). This
plays one hour of that for `--pods` pods (5 Vault objects each, one service account),
with the real driver's client (testkit/go/driver), a real daemon and a real OpenBao,
time compressed `--compress` times (an hour in 90 s by default; every interval, the
republish period and the cache TTL scaled alike). Logins and reads are counted in
OpenBao's audit log; Mounts in the daemon's log.

Setups, each against the anchor of one read per object per Mount:

  driver:           driver writes, driver rotation on
  provider:         provider writes, driver rotation on, daemon rotation 2 min
  provider-only:    provider writes, driver rotation off, daemon rotation 2 min

    python bench/rotation_load.py [--pods 20] [--compress 40] [--volumes 1000]

Prints JSON figures; nothing is asserted.
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.memory import start, tracked_volumes  # noqa: E402
from testkit import driver  # noqa: E402
from testkit.requests import pod_volume  # noqa: E402
from testkit.servers import (  # noqa: E402
    OpenBao,
    Signer,
    configure_openbao,
    openbao_server,
    start_kube_api,
    wait_until,
)

HOUR = 3600.0
REPUBLISH = (60.0, 90.0)  # kubelet's republish period of one volume, seconds
DRIVER_POLL = 120.0  # the driver's --rotation-poll-interval default
DAEMON_POLL = 120.0  # the daemon's --rotation-poll-interval default
CACHE_TTL = 60.0  # the daemon's --cache-ttl default
OBJECTS = 5

SETUPS = {
    "driver": {"write_mode": "driver", "driver_rotation": True},
    "provider": {"write_mode": "provider", "driver_rotation": True},
    "provider-only": {"write_mode": "provider", "driver_rotation": False},
}


def play(
    setup: str,
    bao: OpenBao,
    signer: Signer,
    binary: Path,
    tmp: Path,
    pods: int,
    compress: float,
) -> dict[str, Any]:
    """One compressed hour of `setup`: the counts per volume, scaled back to an hour."""
    spec = SETUPS[setup]
    scale = 1 / compress
    work = tmp / setup
    work.mkdir()
    daemon, providers = start(
        work,
        "providers",
        "--name",
        "vault",
        "--write-mode",
        str(spec["write_mode"]),
        "--kubelet-pods-dir",
        str(work / "pods"),
        "--cache-ttl",
        f"{CACHE_TTL * scale:.3f}",
    )
    try:
        wait_until((providers / "vault.sock").exists, "daemon socket")
        flags: dict[str, Any] = {}
        if spec["driver_rotation"]:
            flags["rotation_poll"] = f"{DRIVER_POLL * scale:.3f}s"
        parameters = {
            "roleName": "app",
            "vaultAddress": bao.addr,
            "vaultAuthMountPath": "jwt",
            "rotationPollInterval": f"{DAEMON_POLL * scale:.3f}s",
            "objects": "".join(
                f"- {{objectName: s{i}, secretPath: secret/data/load/s{i}, secretKey: v}}\n"
                for i in range(OBJECTS)
            ),
        }
        rng = random.Random(20261208)
        before = counts(bao)
        calls = skipped = 0
        with driver.running(binary, providers, **flags) as plays:
            started = time.monotonic()
            events: list[tuple[float, int, bool]] = []
            for p in range(pods):  # first Mounts spread over the first republish period
                heapq.heappush(events, (rng.uniform(0, REPUBLISH[0] * scale), p, False))
            while events:
                when, p, republish = heapq.heappop(events)
                if when > HOUR * scale:
                    break
                time.sleep(max(0.0, started + when - time.monotonic()))
                uid = f"uid-{p}"
                token = signer.token("default", "app", ["vault"], pod=f"app-{p}", pod_uid=uid)
                result = plays.mount(
                    "vault",
                    parameters,
                    pod_volume(work / "pods", uid=uid),
                    context=driver.volume_context(
                        "load", pod=f"app-{p}", uid=uid, service_account="app"
                    ),
                    tokens=driver.tokens({"vault": token}),
                    republish=republish,
                )
                calls += 1
                skipped += result.skipped
                heapq.heappush(events, (when + rng.uniform(*REPUBLISH) * scale, p, True))
        after = counts(bao)
    finally:
        daemon.terminate()
        daemon.wait(15)
    per_volume = {k: round((after[k] - before[k]) / pods, 1) for k in after}
    reads = per_volume["reads"]
    return {
        "setup": setup,
        **spec,
        "republishes_per_volume": round(calls / pods, 1),
        "skipped_by_the_driver_per_volume": round(skipped / pods, 1),
        "vault_logins_per_volume_hour": per_volume["logins"],
        "vault_reads_per_volume_hour": reads,
        "reads_per_object_hour": round(reads / OBJECTS, 1),
    }


def counts(bao: OpenBao) -> dict[str, int]:
    reads = sum(bao.requests_to(f"secret/data/load/s{i}") for i in range(OBJECTS))
    return {"logins": bao.requests_to("auth/jwt/login"), "reads": reads}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=20)
    parser.add_argument("--compress", type=float, default=40.0, help="an hour in 3600/N s")
    parser.add_argument("--volumes", type=int, default=1000, help="for the RSS figure")
    parser.add_argument("--setups", default=",".join(SETUPS))
    args = parser.parse_args()
    signer = Signer()
    kube = start_kube_api(signer)
    results: dict[str, Any] = {
        "pods": args.pods,
        "objects_per_pod": OBJECTS,
        "hour_played_in_s": round(HOUR / args.compress, 1),
        "republish_period_s": list(REPUBLISH),
        "driver_rotation_poll_s": DRIVER_POLL,
        "daemon_rotation_poll_s": DAEMON_POLL,
        "cache_ttl_s": CACHE_TTL,
        "setups": [],
    }
    with tempfile.TemporaryDirectory(prefix="csiprovider-rbench-") as name:
        tmp = Path(name)
        binary = driver.build(tmp / "harness")
        (tmp / "bao").mkdir()
        with openbao_server(tmp / "bao") as bao:
            configure_openbao(bao, signer, kube)
            for i in range(OBJECTS):
                bao.api("POST", f"secret/data/load/s{i}", {"data": {"v": f"value-{i}"}})
            for setup in args.setups.split(","):
                figures = play(setup, bao, signer, binary, tmp, args.pods, args.compress)
                results["setups"].append(figures)
                print(json.dumps(figures), file=sys.stderr)
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

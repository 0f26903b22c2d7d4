"""Vault Mount latency: Mounts of 1, 5 and 20 KV objects through a running daemon against
a local OpenBao dev server, beside one direct hvac read of one secret, in one run.

Two daemons: `cold` with --cache-ttl 0 (every Mount reads every object from OpenBao) and
`republish` with the default cache (what kubelet's periodic republish of a pod costs).
Prints JSON with p50/p99 (ms) and the ratio Mount(20) / single read for each.

`through_latency_proxy`: the same OpenBao behind a TCP proxy of this file's own that
delays every chunk by --proxy-delay-ms (5 ms) in each direction, as a network would. Through
it: one direct hvac read and one direct jwt login; a cold 20-object Mount (--cache-ttl 0) of
a new pod each time (new UID, target and token, so its first Mount, login included), and a
second Mount of an already logged-in pod; and the most reads of secret paths the proxy saw
in flight at once (from the request line until the response's first bytes). Target: a cold
20-object Mount <= 3x one read, i.e. all 20 reads in flight together.

    python bench/vault_mount.py [--iterations N] [--proxy-iterations N] [--proxy-delay-ms MS]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
import hvac

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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


def run_daemon(
    work: Path, addr: str, token: str, cache_ttl: str, iterations: int
) -> dict[str, Any]:
    """Start a daemon serving `vault`, time Mounts of 1, 5 and 20 objects."""
    providers = work / "providers"
    daemon = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "csiprovider",
            "serve",
            "--name",
            "vault",
            "--providers-dir",
            str(providers),
            "--health-addr",
            "",
            "--log-level",
            "warning",
            "--cache-ttl",
            cache_ttl,
            "--hmac-key-file",
            str(ROOT / "bench" / "bench-hmac.key"),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results: dict[str, Any] = {}
    try:
        sock = providers / "vault.sock"
        wait_until(sock.exists, "daemon socket")
        with grpc.insecure_channel(f"unix://{sock}") as channel:
            stub = pb_grpc.CSIDriverProviderStub(channel)
            for n in (1, 5, 20):
                objects = "".join(
                    f"- {{objectName: s{i}, secretPath: secret/data/bench/s{i}, "
                    "secretKey: value}\n"
                    for i in range(n)
                )
                request = pb.MountRequest(
                    attributes=json.dumps(
                        {
                            "roleName": "app",
                            "vaultAddress": addr,
                            "vaultAuthMountPath": "jwt",
                            "objects": objects,
                            "csi.storage.k8s.io/pod.name": "bench-0",
                            "csi.storage.k8s.io/pod.namespace": "default",
                            "csi.storage.k8s.io/pod.uid": "uid-bench",
                            "csi.storage.k8s.io/serviceAccount.name": "app",
                            "csi.storage.k8s.io/serviceAccount.tokens": json.dumps(
                                {"vault": {"token": token, "expirationTimestamp": ""}}
                            ),
                        }
                    ),
                    secrets="{}",
                    target_path=str(work / "mnt"),
                    permission="420",
                )
                for _ in range(20):
                    stub.Mount(request, timeout=30)
                samples = []
                for _ in range(iterations):
                    start = time.perf_counter()
                    reply = stub.Mount(request, timeout=30)
                    samples.append(time.perf_counter() - start)
                    assert len(reply.files) == n
                results[f"mount_{n}"] = {"p50_ms": pct(samples, 0.5), "p99_ms": pct(samples, 0.99)}
    finally:
        daemon.terminate()
        daemon.wait(15)
    return results


# ---------------------------------------------------------------- latency-injecting proxy

REQUEST_LINE = re.compile(rb"^(GET|POST|PUT|DELETE|LIST|PATCH|HEAD) (\S+) HTTP/1\.[01]\r\n")


def path_class(path: str) -> str:
    """secret (a KV read), login, or the path itself for anything else."""
    path = path.split("?")[0]
    if path.startswith("/v1/secret/"):
        return "secret"
    if path.endswith("/login"):
        return "login"
    return path


class LatencyProxy:
    """A TCP proxy on 127.0.0.1 in front of `target` (host, port): every chunk read from
    one side is written to the other `delay` seconds later (a delay line per direction, so
    chunks in flight together are delayed together). It watches the HTTP/1.1 request lines
    going upstream and the status lines coming back to count requests per path class and
    the most in flight at once."""

    def __init__(self, target: tuple[str, int], delay: float) -> None:
        self.target, self.delay = target, delay
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0
        self.requests: Counter[str] = Counter()
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight: Counter[str] = Counter()
        self.connections = self.max_connections = self.connections_opened = 0

    # -- figures (read and reset from the benchmark's thread)
    def reset(self) -> None:
        """Counts start over; maxima start from what is open or in flight now."""
        with self.lock:
            self.requests = Counter()
            self.max_in_flight = Counter(self.in_flight)
            self.max_connections = self.connections
            self.connections_opened = 0

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": dict(self.requests),
                "max_in_flight": {k: v for k, v in self.max_in_flight.items() if v},
                "max_connections_open": self.max_connections,
                "connections_opened": self.connections_opened,
            }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LatencyProxy:
        self.thread.start()
        server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._accept, "127.0.0.1", 0), self.loop
        ).result(10)
        self.server = server
        self.port = server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        async def close() -> None:
            self.server.close()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    # -- forwarding
    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            upstream_r, upstream_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.close()
            return
        with self.lock:
            self.connections += 1
            self.connections_opened += 1
            self.max_connections = max(self.max_connections, self.connections)
        pending: list[str] = []  # path classes of requests sent, not yet answered
        try:
            await asyncio.gather(
                self._pump(client_r, upstream_w, pending, True),
                self._pump(upstream_r, client_w, pending, False),
            )
        finally:
            with self.lock:
                self.connections -= 1
                for cls in pending:  # closed unanswered
                    self.in_flight[cls] -= 1

    def _observe(self, data: bytes, pending: list[str], upstream: bool) -> None:
        with self.lock:
            if upstream:
                match = REQUEST_LINE.match(data)
                if match:
                    cls = path_class(match.group(2).decode())
                    pending.append(cls)
                    self.requests[cls] += 1
                    self.in_flight[cls] += 1
                    self.max_in_flight[cls] = max(self.max_in_flight[cls], self.in_flight[cls])
            elif pending and data.startswith(b"HTTP/1."):
                self.in_flight[pending.pop(0)] -= 1

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        pending: list[str],
        upstream: bool,
    ) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            try:
                while True:
                    due, data = await queue.get()
                    if not data:
                        break
                    wait = due - self.loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    writer.write(data)
                    await writer.drain()
            except OSError:
                pass
            finally:
                writer.close()

        sender = asyncio.create_task(deliver())
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                self._observe(data, pending, upstream)
                queue.put_nowait((self.loop.time() + self.delay, data))
        except OSError:
            pass
        finally:
            queue.put_nowait((0.0, b""))
            await sender


def mount_20_request(addr: str, signer: Signer, work: Path, pod: str) -> pb.MountRequest:
    """A first-Mount-shaped request of pod `pod`: its own UID, name, target and token."""
    objects = "".join(
        f"- {{objectName: s{i}, secretPath: secret/data/bench/s{i}, secretKey: value}}\n"
        for i in range(20)
    )
    uid = f"uid-{pod}"
    token = signer.token("default", "app", ["vault"], pod=f"app-{pod}", pod_uid=uid)
    return pb.MountRequest(
        attributes=json.dumps(
            {
                "roleName": "app",
                "vaultAddress": addr,
                "vaultAuthMountPath": "jwt",
                "objects": objects,
                "secretProviderClass": "bench",
                "csi.storage.k8s.io/pod.name": f"app-{pod}",
                "csi.storage.k8s.io/pod.namespace": "default",
                "csi.storage.k8s.io/pod.uid": uid,
                "csi.storage.k8s.io/serviceAccount.name": "app",
                "csi.storage.k8s.io/serviceAccount.tokens": json.dumps(
                    {"vault": {"token": token, "expirationTimestamp": ""}}
                ),
            }
        ),
        secrets="{}",
        target_path=str(work / "pods" / pod / "mnt"),
        permission="420",
    )


def timed_mounts(
    stub: Any, proxy: LatencyProxy, requests_: list[pb.MountRequest]
) -> dict[str, Any]:
    """Mount each request in turn through the proxy: latency and what the proxy saw."""
    proxy.reset()
    took = []
    for req in requests_:
        start = time.perf_counter()
        reply = stub.Mount(req, timeout=30)
        took.append(time.perf_counter() - start)
        assert len(reply.files) == 20
    census = proxy.snapshot()
    return {
        "p50_ms": pct(took, 0.5),
        "p99_ms": pct(took, 0.99),
        "requests_per_mount": {
            k: round(v / len(requests_), 2) for k, v in census["requests"].items()
        },
        "max_in_flight": census["max_in_flight"],
        "max_connections_open": census["max_connections_open"],
        "connections_opened_per_mount": round(census["connections_opened"] / len(requests_), 2),
    }


def proxied_mounts(
    work: Path, proxy: LatencyProxy, signer: Signer, iterations: int, *extra: str
) -> dict[str, Any]:
    """A --cache-ttl 0 daemon: first Mounts of new pods (login included) and repeated Mounts
    of a logged-in pod, 20 objects each, all through the proxy."""
    providers = work / "providers"
    daemon = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "csiprovider",
            "serve",
            "--name",
            "vault",
            "--providers-dir",
            str(providers),
            "--health-addr",
            "",
            "--log-level",
            "warning",
            "--cache-ttl",
            "0",
            "--hmac-key-file",
            str(ROOT / "bench" / "bench-hmac.key"),
            *extra,
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    out: dict[str, Any] = {"daemon_flags": ["--cache-ttl", "0", *extra]}
    try:
        sock = providers / "vault.sock"
        wait_until(sock.exists, "daemon socket")
        with grpc.insecure_channel(f"unix://{sock}") as channel:
            stub = pb_grpc.CSIDriverProviderStub(channel)
            for w in range(3):  # warm up: imports, connection pools
                stub.Mount(mount_20_request(proxy.url, signer, work, f"warm-{w}"), timeout=30)
            requests_ = [
                mount_20_request(proxy.url, signer, work, f"cold-{i}") for i in range(iterations)
            ]
            out["first_mount_incl_login"] = timed_mounts(stub, proxy, requests_)
            again = requests_[-1]  # that pod is logged in now
            stub.Mount(again, timeout=30)
            out["mount_logged_in_pod_cache_off"] = timed_mounts(stub, proxy, [again] * iterations)
    finally:
        daemon.terminate()
        daemon.wait(15)
    return out


def through_proxy(
    work: Path, bao_addr: str, signer: Signer, delay: float, iterations: int
) -> dict[str, Any]:
    host, port = bao_addr.removeprefix("http://").rsplit(":", 1)
    out: dict[str, Any] = {
        "delay_ms_each_way_per_chunk": round(delay * 1000, 3),
        "iterations": iterations,
    }
    with LatencyProxy((host, int(port)), delay) as proxy:
        token = signer.token("default", "app", ["vault"])
        client = hvac.Client(url=proxy.url, token="")
        logins = []
        for i in range(iterations + 3):
            start = time.perf_counter()
            login = client.auth.jwt.jwt_login(role="app", jwt=token, path="jwt")
            if i >= 3:
                logins.append(time.perf_counter() - start)
        client.token = login["auth"]["client_token"]
        for _ in range(10):
            client.secrets.kv.v2.read_secret_version("bench/s0", raise_on_deleted_version=True)
        reads = []
        for _ in range(max(100, iterations)):
            start = time.perf_counter()
            client.secrets.kv.v2.read_secret_version("bench/s0", raise_on_deleted_version=True)
            reads.append(time.perf_counter() - start)
        client.adapter.close()
        read_p50, login_p50 = pct(reads, 0.5), pct(logins, 0.5)
        out["direct_hvac_read"] = {"p50_ms": read_p50, "p99_ms": pct(reads, 0.99)}
        out["direct_jwt_login"] = {"p50_ms": login_p50, "p99_ms": pct(logins, 0.99)}
        for label, extra in {"default_flags": ()}.items():
            section = proxied_mounts(work / f"proxy-{label}", proxy, signer, iterations, *extra)
            first = section["first_mount_incl_login"]["p50_ms"]
            repeat = section["mount_logged_in_pod_cache_off"]["p50_ms"]
            ratio_read = round(first / read_p50, 2)
            ratio_login_read = round(first / (login_p50 + read_p50), 2)
            ratio_repeat = round(repeat / read_p50, 2)
            section["ratios"] = {
                "first_mount_incl_login_over_one_read": ratio_read,
                "first_mount_incl_login_over_login_plus_read": {
                    "value": ratio_login_read,
                    "target": 3.0,
                    "met": ratio_login_read <= 3.0,
                },
                "logged_in_mount_over_one_read": {
                    "value": ratio_repeat,
                    "target": 3.0,
                    "met": ratio_repeat <= 3.0,
                },
                "all_20_reads_in_flight_at_once": max(
                    section["first_mount_incl_login"]["max_in_flight"].get("secret", 0),
                    section["mount_logged_in_pod_cache_off"]["max_in_flight"].get("secret", 0),
                )
                >= 20,
            }
            out[f"cold_mount_20_{label}"] = section
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--proxy-iterations", type=int, default=30)
    parser.add_argument("--proxy-delay-ms", type=float, default=5.0)
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
            results["direct_hvac_read"] = {
                "p50_ms": pct(samples, 0.5),
                "p99_ms": pct(samples, 0.99),
            }
            results["through_latency_proxy"] = through_proxy(
                work / "proxied",
                bao.addr,
                signer,
                args.proxy_delay_ms / 1000,
                args.proxy_iterations,
            )
    assert kube.server is not None
    kube.server.shutdown()
    single = results["direct_hvac_read"]["p50_ms"]
    for mode in ("cold", "republish"):
        results[mode]["ratio_mount20_over_single_read_p50"] = round(
            results[mode]["mount_20"]["p50_ms"] / single, 2
        )
    results["target_ratio"] = 1.5
    print(json.dumps({"iterations": args.iterations, **results}, indent=2))


if __name__ == "__main__":
    main()

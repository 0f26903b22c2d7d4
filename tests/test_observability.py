"""Probes, metrics and the gRPC health service, over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import requests
from grpc_health.v1 import health_pb2, health_pb2_grpc

from csiprovider.server import ServeConfig
from testkit.daemon import running
from testkit.requests import mount_request
from testkit.servers import free_port

GUARD = 60.0  # seconds: only against a hang, never the thing asserted

OBJECTS = [{"objectName": "db-password-object", "backend": "file", "path": "db/password"}]


async def test_probes_metrics_and_grpc_health(
    serve_config: Callable[..., ServeConfig], file_root: Path
) -> None:
    port = free_port()
    config = serve_config(health_addr=f"127.0.0.1:{port}")
    base = f"http://127.0.0.1:{port}"
    async with running(config) as stubs:
        await stubs["csiprovider"].Mount(mount_request(OBJECTS))
        loop_get = __import__("asyncio").get_running_loop().run_in_executor
        healthz = await loop_get(None, lambda: requests.get(f"{base}/healthz", timeout=GUARD))
        ready = await loop_get(None, lambda: requests.get(f"{base}/readyz", timeout=GUARD))
        legacy = await loop_get(None, lambda: requests.get(f"{base}/health/ready", timeout=GUARD))
        metrics = await loop_get(None, lambda: requests.get(f"{base}/metrics", timeout=GUARD))
        async with grpc.aio.insecure_channel(
            f"unix://{config.providers_dir / 'csiprovider.sock'}"
        ) as channel:
            stub: Any = health_pb2_grpc.HealthStub(channel)
            status = await stub.Check(health_pb2.HealthCheckRequest(service=""))
        file_root.rename(file_root.with_name("moved"))
        not_ready = await loop_get(None, lambda: requests.get(f"{base}/readyz", timeout=GUARD))
    assert healthz.status_code == ready.status_code == legacy.status_code == 200
    assert status.status == health_pb2.HealthCheckResponse.SERVING
    assert not_ready.status_code == 503 and "file root" in not_ready.text
    text = metrics.text
    assert 'csiprovider_mounts_total{dialect="native",provider="csiprovider",result="OK"}' in text
    assert "csiprovider_mount_duration_seconds_bucket" in text
    assert 'csiprovider_backend_requests_total{backend="file",operation="read",result="ok"}' in text
    # Labels never carry pod-controlled text or secrets.
    for forbidden in ("db-password-object", "app-0", "pw-0123456789", "app-secrets"):
        assert forbidden not in text


async def test_a_vault_outage_keeps_the_daemon_ready_and_shows_in_verbose_and_metrics(
    serve_config: Callable[..., ServeConfig], caplog: Any
) -> None:
    """/readyz checks only this daemon: an unreachable --vault-addr is a metric and a
    verbose line, probed in the background, never a NotReady pod or a log line per probe."""
    port, dead = free_port(), free_port()
    config = serve_config(
        health_addr=f"127.0.0.1:{port}", vault_flag_address=f"http://127.0.0.1:{dead}"
    )
    base = f"http://127.0.0.1:{port}"
    loop = asyncio.get_running_loop()

    async def get(path: str) -> requests.Response:
        return await loop.run_in_executor(
            None, lambda: requests.get(f"{base}{path}", timeout=GUARD)
        )

    async with running(config):
        guard = loop.time() + GUARD
        verbose = await get("/readyz?verbose")
        while ", checked " not in verbose.text:  # this daemon's probe has answered
            assert loop.time() < guard, "the background probe did not answer in time"
            await asyncio.sleep(0.05)
            verbose = await get("/readyz?verbose")
        metrics = await get("/metrics")
        probes = [await get("/readyz") for _ in range(5)]
    assert 'csiprovider_backend_reachable{backend="vault"} 0.0' in metrics.text
    assert all(p.status_code == 200 for p in probes)
    assert verbose.status_code == 200
    assert f"vault http://127.0.0.1:{dead}: unreachable: ConnectionError" in verbose.text
    assert sum("backend unreachable" in r.getMessage() for r in caplog.records) <= 1

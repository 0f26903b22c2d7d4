"""In-process daemon fixtures: the real grpc.aio server on a real Unix socket."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from csiprovider.server import ServeConfig
from testkit.daemon import running
from testkit.requests import pod_volume


@pytest.fixture
def file_root(tmp_path: Path) -> Path:
    root = tmp_path / "secrets"
    (root / "default" / "db").mkdir(parents=True)
    (root / "default" / "db" / "username").write_text("app_user")
    (root / "default" / "db" / "password").write_text("pw-0123456789")
    (root / "other").mkdir()
    (root / "other" / "theirs").write_text("other-namespace-secret")
    return root


@pytest.fixture
def hmac_key(tmp_path: Path) -> Path:
    key = tmp_path / "hmac.key"
    key.write_text("0123456789abcdef0123456789abcdef\n")
    return key


@pytest.fixture
def serve_config(tmp_path: Path, file_root: Path, hmac_key: Path) -> Callable[..., ServeConfig]:
    def make(**overrides: Any) -> ServeConfig:
        values: dict[str, Any] = {
            "names": ["csiprovider"],
            "providers_dir": tmp_path / "providers",
            "write_mode": "driver",
            "file_root": file_root,
            "hmac_key_file": hmac_key,
            "mount_timeout": 10.0,
            "shutdown_grace": 2.0,
            "fetch_workers": 4,
            "cache_ttl": 0.0,  # tests that change secrets between Mounts see the change
            "kubelet_pods_dir": tmp_path / "pods",  # provider mode writes pod volumes only
        }
        values.update(overrides)
        return ServeConfig(**values)

    return make


@pytest.fixture
async def stub(serve_config: Callable[..., ServeConfig]) -> AsyncIterator[Any]:
    async with running(serve_config()) as stubs:
        yield stubs["csiprovider"]


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Path]:
    """The pod's volume (testkit.requests.POD_UID) under the pods dir of `serve_config`."""
    yield pod_volume(tmp_path / "pods")

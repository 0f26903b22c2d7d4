"""Fixtures shared by the store tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testkit.servers import KubeAPI

ROLE = "arn:aws:iam::123456789012:role/app"
"""The IRSA role on ServiceAccount default/app (`aws_env`)."""


@pytest.fixture
def aws_env(moto: str, monkeypatch: pytest.MonkeyPatch, kube_api: KubeAPI) -> Iterator[str]:
    """The daemon's AWS endpoint is moto, no ambient credentials, and ServiceAccount
    default/app carries the IRSA role annotation; yields moto's URL."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    kube_api.service_accounts[("default", "app")] = {"eks.amazonaws.com/role-arn": ROLE}
    yield moto

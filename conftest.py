"""Session-wide real servers shared by tests/ and e2e/ (started once, on demand), and the
test tiers: each test is marked with the real programs it needs (testkit/tiers.py)."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from testkit import tiers
from testkit.golang import Oracle, build_oracles
from testkit.servers import (
    KubeAPI,
    OpenBao,
    Postgres,
    Signer,
    configure_database_engine,
    configure_openbao,
    moto_server,
    openbao_server,
    postgres_server,
    start_kube_api,
)


@pytest.fixture(scope="session")
def signer() -> Signer:
    return Signer()


@pytest.fixture(scope="session")
def kube_api(signer: Signer) -> Iterator[KubeAPI]:
    api = start_kube_api(signer)
    yield api
    assert api.server is not None
    api.server.shutdown()


@pytest.fixture(scope="session")
def openbao(
    tmp_path_factory: pytest.TempPathFactory, signer: Signer, kube_api: KubeAPI
) -> Iterator[OpenBao]:
    workdir: Path = tmp_path_factory.mktemp("openbao")
    with openbao_server(workdir) as bao:
        configure_openbao(bao, signer, kube_api)
        yield bao


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    with postgres_server() as pg:
        yield pg


@pytest.fixture(scope="session")
def openbao_db(openbao: OpenBao, postgres: Postgres) -> OpenBao:
    configure_database_engine(openbao, postgres)
    return openbao


@pytest.fixture(scope="session")
def moto() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture(scope="session")
def driver_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The driver harness (testkit/go/driver), built once (installs Go if missing)."""
    from testkit import driver

    return driver.build(tmp_path_factory.mktemp("driver-harness"))


@pytest.fixture(scope="session")
def go_oracles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Oracle]:
    """The Go programs under tests/compat/go/oracle, built once (installs Go if missing)."""
    return build_oracles(tmp_path_factory.mktemp("go-oracles"))


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test using a server fixture, directly or through another, carries its marker."""
    for item in items:
        for fixture in getattr(item, "fixturenames", ()):
            for marker in tiers.FIXTURES.get(fixture, ()):
                item.add_marker(marker)


def _check_markers(item: pytest.Item) -> None:
    unmarked = sorted({m for m in tiers.take_started() if item.get_closest_marker(m) is None})
    if unmarked:
        pytest.fail(
            f"{item.nodeid} started "
            f"{' and '.join(tiers.PROGRAMS[m] for m in unmarked)} without its marker: "
            f"add {' '.join(f'@pytest.mark.{m}' for m in unmarked)}",
            pytrace=False,
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    tiers.take_started()
    try:
        return (yield)
    finally:
        _check_markers(item)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    try:
        return (yield)
    finally:
        _check_markers(item)

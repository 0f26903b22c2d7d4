"""The daemon: one grpc.aio server per provider name, each on `<providers-dir>/<name>.sock`.

One server per name (rather than one server on many sockets) because the name decides
the dialect, and a request does not say which socket it came in on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import signal
import socket
import stat
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as grpc_health

from csiprovider import health
from csiprovider.dialects import Dialect
from csiprovider.errors import MountError
from csiprovider.fetchcache import FetchCache
from csiprovider.resolver import Resolver
from csiprovider.rotation import Tracker
from csiprovider.service import (
    KUBELET_PODS_DIR,
    MAX_RESPONSE_BYTES,
    GroupLookup,
    ProviderService,
    WriteMode,
)
from csiprovider.stores import Backend, LazyBackend
from csiprovider.stores.file.backend import FileBackend
from csiprovider.stores.vault.config import VaultDefaults
from csiprovider.stores.vault.source import VaultIdentity
from csiprovider.v1alpha1 import service_pb2_grpc as pb_grpc
from csiprovider.versions import Versioner

if TYPE_CHECKING:
    from csiprovider.kube import KubeClient
    from csiprovider.model import SpcObject
    from csiprovider.request import MountParams
    from csiprovider.stores.aws.dialect import RegionLookup
    from csiprovider.stores.vault.auth import Client

log = logging.getLogger("csiprovider.server")
WORK_THREADS = 4  # parse, write, render: CPU-bound and short
DEFAULT_HMAC_SECRET = "csiprovider-hmac-key"
DEFAULT_HMAC_SECRET_VAULT = "vault-csi-provider-hmac-key"  # vault-csi-provider's default


@dataclass(frozen=True)
class ServeConfig:
    """Daemon settings, from flags or their environment variables."""

    names: Sequence[str]
    providers_dir: Path
    write_mode: WriteMode
    file_root: Path | None
    hmac_key_file: Path | None
    mount_timeout: float
    shutdown_grace: float
    fetch_workers: int
    endpoints: Sequence[Path] = ()
    health_addr: str = ""
    vault: VaultDefaults = field(default_factory=VaultDefaults.build)
    cache_size: int = 1000
    cache_ttl: float = 60.0
    renew_fraction: float = 2 / 3
    hmac_secret_name: str | None = ""  # None: the default Secret when in a cluster
    hmac_secret_namespace: str = ""
    kube_api_url: str = ""
    kube_token_file: str = ""
    kube_ca_file: str = ""
    kube_qps: float = 5.0  # csiprovider.kube.DEFAULT_QPS
    kube_burst: int = 10  # csiprovider.kube.DEFAULT_BURST
    aws_pod_identity_endpoint: str = ""
    metrics_addr: str = ""
    rotation_poll_interval: float = 120.0
    backend_concurrency: int = 32
    vault_flag_address: str = ""  # --vault-addr, probed in the background
    hmac_refresh_interval: float = 30.0
    pod_identity_timeout: float = 5.0
    eks_addon_version: str = ""
    admin_socket: Path | None = None  # `csiprovider refresh` talks to it
    aws_region: str = field(default_factory=lambda: os.environ.get("AWS_REGION", ""))
    node_name: str = field(default_factory=lambda: os.environ.get("NODE_NAME", ""))
    max_response_bytes: int = MAX_RESPONSE_BYTES  # the driver's --max-call-recv-msg-size
    kubelet_pods_dir: Path = Path(KUBELET_PODS_DIR)  # provider-writes mode writes only here

    def sockets(self) -> list[tuple[str, Path]]:
        """(provider name, socket path): the name is what selects the dialect."""
        listed = [(n, self.providers_dir.absolute() / f"{n}.sock") for n in self.names]
        return listed + [(p.stem, p.absolute()) for p in self.endpoints]


class ServeError(RuntimeError):
    """The daemon cannot serve a socket; the message says which and why."""


class SocketInUse(ServeError):
    """Another process is serving on the socket we were asked to create."""


def build_resolver(
    config: ServeConfig,
    executor: ThreadPoolExecutor,
    kube: KubeClient | None,
    work: ThreadPoolExecutor | None = None,
    versioner: Versioner | None = None,
) -> Resolver:
    """Wire the backends and the versioner."""
    backends: dict[str, Backend] = {}
    if config.file_root is not None:
        backends["file"] = FileBackend(config.file_root)

    def aws_backend() -> Backend:
        from csiprovider.stores.aws.backend import AwsBackend
        from csiprovider.stores.aws.credentials import AwsCredentials

        return AwsBackend(
            AwsCredentials(kube, config.aws_pod_identity_endpoint, config.pod_identity_timeout)
        )

    def vault_backend() -> Backend:
        from csiprovider.stores.vault.auth import Authenticator
        from csiprovider.stores.vault.backend import VaultBackend
        from csiprovider.stores.vault.leases import LeaseCache

        token_source = None
        if kube is not None:

            def token_source(identity: VaultIdentity) -> str:
                return kube.token_request(
                    identity.pod_namespace,
                    identity.service_account,
                    identity.pod_name,
                    identity.pod_uid,
                    identity.audience,
                )

        return VaultBackend(
            Authenticator(token_source, config.cache_size, config.renew_fraction),
            LeaseCache(config.renew_fraction),
        )

    aws = LazyBackend(aws_backend, shares_reads=True)
    for name in ("aws", "aws-kms", "aws-secretsmanager", "aws-ssm"):
        backends[name] = aws  # one backend: credentials and clients are shared
    backends["vault"] = LazyBackend(vault_backend, shares_reads=True)

    def sops_backend() -> Backend:
        from csiprovider.stores.sops.backend import SopsBackend

        return SopsBackend(backends)  # its master keys: the file, vault and aws stores

    backends["sops"] = LazyBackend(sops_backend, shares_reads=False)
    if versioner is None:
        versioner = _versioner(config, kube)
    return Resolver(
        backends,
        versioner,
        executor,
        FetchCache(config.cache_ttl),
        config.backend_concurrency,
        work,
    )


class _LazyNative:
    """The native dialect, loaded by the first Mount that needs it (in a worker thread,
    where dialects run): an idle daemon does not hold its YAML and schema machinery."""

    def __init__(self, defaults: VaultDefaults, region: RegionLookup | None) -> None:
        self._defaults = defaults
        self._region = region
        self._dialect: Dialect | None = None

    def __call__(self, params: MountParams) -> Sequence[SpcObject]:
        if self._dialect is None:
            from csiprovider.native.dialect import NativeDialect

            self._dialect = NativeDialect(self._defaults, self._region)
        return self._dialect(params)


def _dialect(
    name: str, config: ServeConfig, region: RegionLookup | None, native_dialect: Dialect
) -> tuple[str, Dialect]:
    """The provider name decides the dialect; a compatibility dialect loads only when
    its name is served."""
    if name == "vault":
        from csiprovider.stores.vault.dialect import VaultDialect

        return "vault", VaultDialect(config.vault)
    if name == "aws":
        from csiprovider.stores.aws.dialect import AwsDialect

        return "aws", AwsDialect(region)
    return "native", native_dialect


def _kube_client(config: ServeConfig) -> KubeClient | None:
    """The API client, in a cluster or with --kube-api-url; outside, none (and its HTTP
    library is never loaded)."""
    if not config.kube_api_url and not os.environ.get("KUBERNETES_SERVICE_HOST"):
        return None
    from csiprovider.kube import KubeClient

    return KubeClient.from_environment(
        config.kube_api_url,
        config.kube_token_file,
        config.kube_ca_file,
        qps=config.kube_qps,
        burst=config.kube_burst,
    )


def _versioner(config: ServeConfig, kube: KubeClient | None) -> Versioner:
    """The HMAC key: a file, else a Kubernetes Secret (read once), else random."""
    if config.hmac_key_file is not None:
        return Versioner.from_file(config.hmac_key_file)
    if config.hmac_secret_name:
        if kube is None:
            raise ServeError(
                "--hmac-secret-name needs the Kubernetes API: run in a cluster or set "
                "--kube-api-url"
            )
        from csiprovider.kube import own_namespace

        namespace = config.hmac_secret_namespace or own_namespace()
        if not namespace:
            raise ServeError("--hmac-secret-name needs --hmac-secret-namespace outside a pod")
        try:
            return Versioner(kube.hmac_key(namespace, config.hmac_secret_name))
        except MountError as exc:
            raise ServeError(f"HMAC key: {exc.message}") from None
    if kube is not None and config.hmac_secret_name is None:
        # In a cluster, as vault-csi-provider: a get-or-create Secret by default, so that
        # its manifests (no -hmac-secret-name) keep versions across restarts.
        from csiprovider.kube import own_namespace

        name = (
            DEFAULT_HMAC_SECRET_VAULT
            if "vault" in config.names or any(p.stem == "vault" for p in config.endpoints)
            else DEFAULT_HMAC_SECRET
        )
        namespace = config.hmac_secret_namespace or own_namespace()
        if namespace:
            try:
                versioner = Versioner(kube.hmac_key(namespace, name))
            except MountError as exc:
                log.warning(
                    "cannot use the default HMAC key secret; using a random key, "
                    "object versions will change on restart",
                    extra={"fields": {"secret": f"{namespace}/{name}", "reason": exc.message}},
                )
                return Versioner.random()
            versioner.secret_name = name  # kept fresh like an explicit one
            return versioner
    log.warning(
        "no --hmac-key-file or --hmac-secret-name: using a random key, object versions "
        "will change on restart"
    )
    return Versioner.random()


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of a socket file: a provider that replaced ours made a new one."""
    try:
        found = path.lstat()
    except FileNotFoundError:
        return None
    return found.st_dev, found.st_ino


def prepare_socket(path: Path) -> None:
    """Remove a stale socket file; refuse to replace a live one or a non-socket file."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise SocketInUse(f"{path} exists and is not a socket; remove it or choose another name")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
    except OSError:
        log.info("removing stale socket", extra={"fields": {"socket": str(path)}})
        path.unlink(missing_ok=True)
        return
    finally:
        probe.close()
    raise SocketInUse(f"{path} is in use by another running provider")


async def serve(
    config: ServeConfig, stop: asyncio.Event | None = None, tracker: Tracker | None = None
) -> None:
    """Serve until SIGTERM/SIGINT (or `stop` is set), then drain and remove the sockets.
    `tracker` is the provider-writes rotation tracker, made from the config when not given
    (tests pass one that checks more often or reports what it rotates)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    kube = _kube_client(config)
    # Backend calls in one pool, parsing/writing/rendering in another: a store that hangs
    # fills only its own threads (and its semaphore keeps the rest waiting off-thread).
    executor = ThreadPoolExecutor(config.fetch_workers, thread_name_prefix="fetch")
    work = ThreadPoolExecutor(WORK_THREADS, thread_name_prefix="work")
    versioner = _versioner(config, kube)
    if config.hmac_secret_name is None and versioner.secret_name:
        config = dataclasses.replace(config, hmac_secret_name=versioner.secret_name)
    resolver = build_resolver(config, executor, kube, work, versioner)
    region, region_source = await loop.run_in_executor(work, _region, config, kube)
    native_dialect = _LazyNative(config.vault, region)
    group_of = _group_lookup(kube)
    servers: list[tuple[grpc.aio.Server, Path]] = []
    owned: dict[Path, tuple[int, int] | None] = {}
    tracker = tracker or Tracker(config.rotation_poll_interval)
    background: list[asyncio.Task[None]] = []
    rotating: asyncio.Task[None] | None = None
    if config.write_mode == "provider":
        rotating = asyncio.create_task(tracker.run(stop))
        if config.file_root is not None:
            background.append(asyncio.create_task(watch_files(config.file_root, tracker, stop)))
    if config.hmac_secret_name and config.hmac_key_file is None and kube is not None:
        background.append(asyncio.create_task(refresh_hmac_key(config, kube, versioner, stop)))
    reachability = _reachability(config)
    background += [asyncio.create_task(r.run(stop)) for r in reachability]
    endpoints = health.Endpoints(
        [health.socket_check(path) for _, path in config.sockets()] + _local_checks(config),
        reachability,
    )
    http_servers: list[asyncio.Server] = []
    admin: asyncio.Server | None = None
    health_service = grpc_health.HealthServicer()
    try:
        for address in dict.fromkeys(a for a in (config.health_addr, config.metrics_addr) if a):
            try:
                http_servers.append(await endpoints.start(address))
            except OSError as exc:
                raise ServeError(f"cannot listen on {address}: {exc.strerror}") from None
        for name, path in config.sockets():
            path.parent.mkdir(parents=True, exist_ok=True)
            prepare_socket(path)
            server = grpc.aio.server()
            dialect_name, dialect = _dialect(name, config, region, native_dialect)
            service = ProviderService(
                name,
                dialect_name,
                dialect,
                resolver,
                work,
                config.write_mode,
                config.mount_timeout,
                tracker,
                group_of,
                config.max_response_bytes,
                str(config.kubelet_pods_dir),
            )
            pb_grpc.add_CSIDriverProviderServicer_to_server(service, server)
            health_pb2_grpc.add_HealthServicer_to_server(health_service, server)
            old_umask = os.umask(0o177)  # the socket is born 0600: only root (kubelet) talks
            try:
                server.add_insecure_port(f"unix://{path}")
                await server.start()
            except RuntimeError:
                raise ServeError(
                    f"cannot listen on {path}: check the directory is writable and the path "
                    "is shorter than 108 bytes (the Unix socket limit)"
                ) from None
            finally:
                os.umask(old_umask)
            os.chmod(path, 0o600)
            servers.append((server, path))
            owned[path] = _identity(path)
            log.info(
                "serving",
                extra={
                    "fields": {
                        "provider": name,
                        "socket": str(path),
                        "write_mode": config.write_mode,
                    }
                },
            )
        if config.admin_socket is not None:
            admin = await _admin(config.admin_socket, tracker, config.write_mode)
        _startup_line(config, region_source)
        await health_service.set("", health_pb2.HealthCheckResponse.SERVING)
        await stop.wait()
        await health_service.enter_graceful_shutdown()
        log.info(
            "stopping: draining in-flight mounts",
            extra={"fields": {"grace_seconds": config.shutdown_grace}},
        )
    finally:
        stop.set()
        if rotating is not None:
            # A rotation in flight finishes its write before the sockets go: cancelled, its
            # thread would go on writing while another daemon (or, after a switch to driver
            # mode, the driver) writes the same volume.
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(rotating, config.shutdown_grace)
        for http in http_servers:
            http.close()
        if admin is not None and config.admin_socket is not None:
            admin.close()
            config.admin_socket.unlink(missing_ok=True)
        for task in background:
            task.cancel()
        # gRPC unlinks its socket path when it stops: a socket another provider put
        # there since (vault-csi-provider and ASCP replace whatever is at their path when
        # they start) is moved aside meanwhile, then put back.
        aside = {
            path: path.with_name(f".{path.name}.{os.getpid()}.aside")
            for _, path in servers
            if _identity(path) not in (owned.get(path), None)
        }
        for path, spare in aside.items():
            with contextlib.suppress(OSError):
                path.rename(spare)
        await asyncio.gather(*(s.stop(config.shutdown_grace) for s, _ in servers))
        for _, path in servers:
            if path not in aside:
                path.unlink(missing_ok=True)
        for path, spare in aside.items():
            with contextlib.suppress(OSError):
                spare.rename(path)
        executor.shutdown(wait=False, cancel_futures=True)
        work.shutdown(wait=False, cancel_futures=True)
        log.info("stopped")


def _local_checks(config: ServeConfig) -> list[health.Check]:
    """Readiness beyond the sockets: only this daemon's own state (the file root)."""
    checks: list[health.Check] = []
    if config.file_root is not None:
        root = config.file_root

        async def file_root() -> str | None:
            return None if root.is_dir() else f"file root {root} is missing"

        checks.append(file_root)
    return checks


def _reachability(config: ServeConfig) -> list[health.Reachability]:
    """Background probes of the backends configured at daemon level (--vault-addr)."""
    address = config.vault_flag_address
    if not address:
        return []

    @functools.cache
    def client() -> Client:  # one session: its TLS warning is logged once
        from csiprovider.stores.vault.auth import Client
        from csiprovider.stores.vault.http import session_for

        session, base = session_for(config.vault.connection)
        return Client(session, base, config.vault.connection.namespace or None)

    def probe() -> str | None:
        import requests

        try:  # any HTTP answer (sealed, standby) means Vault is there
            reply = client().api(timeout=2).sys.read_health_status(method="GET")
        except (requests.RequestException, MountError) as exc:
            return type(exc).__name__
        status = getattr(reply, "status_code", 0)
        return None if status else "no answer"

    return [health.Reachability("vault", address, probe)]


def _region(config: ServeConfig, kube: KubeClient | None) -> tuple[RegionLookup | None, str]:
    """The AWS region for SPCs and objects that set none, and where it comes from: the
    daemon's AWS_REGION; else the node's `topology.kubernetes.io/region` label, read once
    here (NODE_NAME from the downward API); else, as ASCP does, the label of each pod's
    node at Mount time (needs get on pods and nodes)."""
    if config.aws_region:
        return None, f"AWS_REGION={config.aws_region}"
    if kube is None:
        return None, "none: SPCs must set parameters.region"
    if config.node_name:
        node = config.node_name
        known: list[str] = []

        def region_of_this_node(namespace: str, pod: str) -> str:
            if not known:  # not read at start: retried by Mounts until it is (get nodes)
                known.append(kube.region_of_node(node))
            return known[0]

        try:
            region_of_this_node("", "")
        except MountError as exc:
            log.warning(
                "cannot read the node's region yet; Mounts that need it retry",
                extra={"fields": {"node": node, "reason": exc.message}},
            )
            return region_of_this_node, f"node {node} (not read yet)"
        return region_of_this_node, f"node {node}: {known[0]}"
    return kube.node_region, "the pod's node, per Mount"


MAX_GID = 2**31 - 1
GROUP_ENTRIES = 20000


def _group_lookup(kube: KubeClient | None) -> GroupLookup:
    """Provider-writes mode: the gid that owns a volume's files, so `filePermission:
    "0440"` works for a non-root pod. The SPC's `fileGroup`, else the pod's
    `securityContext.fsGroup`, read once per volume (target path and pod UID) from the
    pod object; without API access or permission, no group (root-owned, as before)."""
    from csiprovider.caches import LRU
    from csiprovider.errors import InvalidArgument

    known: LRU[tuple[str, str], int | None] = LRU(GROUP_ENTRIES)

    def group_of(params: MountParams) -> int | None:
        raw = params.parameters.get("fileGroup", "")
        if raw:
            if not raw.isdigit() or int(raw) > MAX_GID:
                raise InvalidArgument(
                    f"parameter fileGroup {raw[:32]!r} is not a group id; "
                    'write a number, e.g. "1000"'
                )
            return int(raw)
        if kube is None:
            return None
        key = (params.target_path, params.pod.uid)
        if key in known:
            return known.get(key)
        try:
            group = kube.pod_fs_group(params.pod.namespace, params.pod.name)
        except MountError as exc:
            log.warning(
                "cannot read the pod's fsGroup; files stay root-owned",
                extra={
                    "fields": {
                        "pod": f"{params.pod.namespace}/{params.pod.name}",
                        "reason": exc.message,
                    }
                },
            )
            group = None
        known.put(key, group)
        return group

    return group_of


async def _admin(path: Path, tracker: Tracker, write_mode: str) -> asyncio.Server | None:
    """The admin socket for `csiprovider refresh`; a daemon already answering there keeps
    it (this one then runs without), never a reason not to serve Mounts."""
    from csiprovider.admin import serve_admin

    try:
        prepare_socket(path)
        return await serve_admin(path, tracker, write_mode)
    except (SocketInUse, OSError) as exc:
        log.warning("no admin socket", extra={"fields": {"path": str(path), "reason": str(exc)}})
        return None


def _startup_line(config: ServeConfig, region_source: str) -> None:
    """One line with everything in effect, for whoever reads the pod's log first."""
    dialects = {
        name: ("vault" if name == "vault" else "aws" if name == "aws" else "native")
        for name, _ in config.sockets()
    }
    backends = ["vault", "aws"] + (["file"] if config.file_root is not None else [])
    fields: dict[str, object] = {
        "providers": dialects,
        "providers_dir": str(config.providers_dir),
        "write_mode": config.write_mode,
        "backends": backends,
        "file_root": str(config.file_root) if config.file_root else "",
        "vault_address": config.vault.connection.address,
        "aws_region": region_source,
        "hmac_key": (
            "file"
            if config.hmac_key_file
            else f"secret {config.hmac_secret_name}"
            if config.hmac_secret_name
            else "random"
        ),
    }
    if config.eks_addon_version:
        fields["eks_addon_version"] = config.eks_addon_version
    log.info("csiprovider started", extra={"fields": fields})


async def refresh_hmac_key(
    config: ServeConfig, kube: KubeClient, versioner: Versioner, stop: asyncio.Event
) -> None:
    """Re-read the HMAC key Secret every --hmac-refresh-interval, re-creating it when it
    was deleted, so object versions follow the key as they do with vault-csi-provider
    (which reads it on every Mount; here no Mount waits for the API server)."""
    from csiprovider.kube import own_namespace

    namespace = config.hmac_secret_namespace or own_namespace()
    name = config.hmac_secret_name or ""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), config.hmac_refresh_interval)
        if stop.is_set():
            return
        try:
            key = await loop.run_in_executor(None, lambda: kube.hmac_key(namespace, name))
        except MountError as exc:
            log.warning(
                "cannot re-read the HMAC key secret; keeping the current key",
                extra={"fields": {"secret": config.hmac_secret_name, "reason": exc.message}},
            )
            continue
        if versioner.rekey(key):
            log.info(
                "HMAC key changed: object versions change with it",
                extra={"fields": {"secret": f"{namespace}/{config.hmac_secret_name}"}},
            )


async def watch_files(root: Path, tracker: Tracker, stop: asyncio.Event) -> None:
    """Changes under the file root reach provider-written volumes within seconds."""
    from watchfiles import awatch

    try:
        async for _changes in awatch(root, stop_event=stop, debounce=200, step=50):
            tracker.files_changed()
    except (FileNotFoundError, RuntimeError) as exc:
        log.warning("file root watch stopped", extra={"fields": {"error": str(exc)}})

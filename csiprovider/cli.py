"""Command line: `csiprovider serve`, `mount`, `validate`, `encrypt`, `version`.

Every `serve` flag can also be set by an environment variable named in its help
(CSIPROVIDER_<FLAG>); a flag on the command line wins over the variable. Flags are
accepted as `--flag` and `-flag` (Go's flag package accepts both, and the manifests of
vault-csi-provider and ASCP use them), and so are those two projects' own flags, so their
charts run this daemon unchanged. Values are checked while parsing: a bad one is refused
naming the flag, before anything starts.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from csiprovider import __version__, logs

DEFAULT_PROVIDERS_DIR = "/var/run/secrets-store-csi-providers"
DEFAULT_ADMIN_SOCKET = "/tmp/csiprovider-admin.sock"
LOG_LEVELS = {
    "trace": "debug",
    "debug": "debug",
    "info": "info",
    "warn": "warning",
    "warning": "warning",
    "error": "error",
    "off": "critical",
}
ENV_PREFIX = "CSIPROVIDER_"


def _env(flag: str) -> str:
    return ENV_PREFIX + flag.upper().replace("-", "_")


def _add(
    parser: argparse._ActionsContainer,
    flag: str,
    default: str | None,
    help_text: str,
    aliases: Sequence[str] = (),
    env: bool = True,
    shown: str | None = None,
    **kw: Any,
) -> None:
    """A flag whose default comes from CSIPROVIDER_<FLAG> when set; `-flag` works too;
    `aliases` are other providers' names for it (both forms too). The help says the
    default and the variable."""
    variable = _env(flag)
    value = os.environ.get(variable, default) if env else default
    names = [form for name in (flag, *aliases) for form in (f"--{name}", f"-{name}")]
    shown = shown or ("off" if default in (None, "") else default)
    where = f"; env {variable}" if env else ""
    parser.add_argument(*names, default=value, help=f"{help_text} [default {shown}{where}]", **kw)


def _go_bool(text: str) -> bool:
    from csiprovider.compat.go.strconv import parse_bool

    try:
        return parse_bool(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a boolean (true or false)") from None


def _add_bool(
    parser: argparse._ActionsContainer, flag: str, help_text: str, env: bool = True
) -> None:
    """A boolean flag as Go parses one: `-flag`, `-flag=true`, `-flag=false`. Without
    an environment variable, an absent flag is None (not given)."""
    variable = _env(flag)
    default = _go_bool(os.environ.get(variable, "false")) if env else None
    where = f"; env {variable}" if env else ""
    parser.add_argument(
        f"--{flag}",
        f"-{flag}",
        nargs="?",
        const=True,
        default=default,
        type=_go_bool,
        metavar="BOOL",
        help=f"{help_text} [default false{where}]",
    )


def _number(kind: type[int] | type[float], low: float, what: str) -> Any:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value

    return parse


def _address(text: str) -> str:
    """`host:port`, `:port` or empty (off)."""
    if not text:
        return text
    _, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an address; write HOST:PORT or :PORT, e.g. :8080"
        )
    return text


def _duration(text: str) -> float:
    from csiprovider.compat.go.duration import parse_interval

    try:
        return parse_interval(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _fraction(text: str) -> float:
    value = _number(float, 0.0, "a fraction between 0 and 1")(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a fraction between 0 and 1")
    return float(value)


def _provider_name(text: str) -> str:
    if not text or "/" in text or text.startswith("."):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a provider name; use the SPC's spec.provider, e.g. vault"
        )
    return text


def _octal(text: str) -> int:
    try:
        value = int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an octal mode like 0644") from None
    if not 0 <= value <= 0o777:
        raise argparse.ArgumentTypeError(f"{text!r} is outside 0000..0777")
    return value


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


class _Help(argparse.HelpFormatter):
    """One line per flag: its `--name VALUE`, then ASCP's or vault-helm's name for it;
    the single-dash forms are accepted for every flag and not listed."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=34, width=100)

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if not action.option_strings:
            return super()._format_action_invocation(action)
        names = [n for n in action.option_strings if n.startswith("--")] or action.option_strings
        if action.nargs == 0:
            return ", ".join(names)
        value = (
            "BOOL"
            if action.nargs == "?"
            else ("{" + ",".join(action.choices) + "}" if action.choices else "VALUE")
        )
        return ", ".join(names) + " " + value


class _Parser(argparse.ArgumentParser):
    """argparse with the error style of every other failure of the command line."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"csiprovider: error: {message} (see `{self.prog} --help`)\n")


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="csiprovider", description=__doc__.splitlines()[0])
    sub = top.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = sub.add_parser(
        "serve",
        help="run the provider daemon",
        usage="csiprovider serve [FLAGS]",
        formatter_class=_Help,
        description="Serve the Secrets Store CSI Driver's provider API on "
        "<providers-dir>/<name>.sock for each provider name. Every flag also works as "
        "-flag (Go style), and -flag=true/false for the boolean ones.",
    )
    names_env = os.environ.get(_env("names"))
    core = serve.add_argument_group("serving")
    core.add_argument(
        "--name",
        "-name",
        dest="names",
        action="append",
        type=_provider_name,
        help="provider name to serve as <providers-dir>/<name>.sock; repeatable; the name "
        "selects the dialect (vault, aws, anything else: native) "
        f"[default csiprovider; env {_env('names')}, comma-separated]",
    )
    _add(core, "providers-dir", DEFAULT_PROVIDERS_DIR, "directory the driver scans for sockets")
    _add(
        core,
        "write-mode",
        None,
        "driver: return files to the driver; provider: write them into the target path",
        shown="driver (provider with --provider-volume)",
        choices=["driver", "provider"],
    )
    core.add_argument(
        "--endpoint",
        "-endpoint",
        action="append",
        default=[],
        type=Path,
        help="an extra socket path to serve, vault-csi-provider style "
        "(/provider/vault.sock); its file name selects the dialect; repeatable",
    )
    _add(
        core,
        "max-response-bytes",
        str(4 * 1024 * 1024),
        "largest Mount answer; raise it together with the driver's --max-call-recv-msg-size",
        type=_number(int, 1024, "a number of bytes (at least 1024)"),
    )
    _add(
        core,
        "kubelet-pods-dir",
        "/var/lib/kubelet/pods",
        "provider-writes mode writes only pod volumes under this directory; other targets "
        "(the sync controller's) get the files in the answer",
        type=Path,
    )
    _add(
        core,
        "mount-timeout",
        "30",
        "seconds a Mount may take at most",
        type=_number(float, 0.001, "a positive number of seconds"),
    )
    _add(
        core,
        "shutdown-grace",
        "10",
        "seconds in-flight Mounts may take to finish on SIGTERM",
        type=_number(float, 0.0, "a number of seconds"),
    )
    _add(
        core,
        "fetch-workers",
        "128",
        "threads for blocking backend calls (created as "
        "needed; enough for --backend-concurrency calls to each of 4 backends: file, "
        "vault, aws, sops)",
        type=_number(int, 1, "a positive whole number"),
    )
    _add(
        core,
        "backend-concurrency",
        "32",
        "requests in flight at most per backend (the rest queue within the Mount deadline)",
        type=_number(int, 1, "a positive whole number"),
    )

    stores = serve.add_argument_group("stores and caches")
    _add(
        stores,
        "file-root",
        None,
        "enable the file backend: a pod reads files under DIR/<pod namespace>/",
    )
    _add(
        stores,
        "cache-ttl",
        "60",
        "seconds a Vault or AWS read is reused for republishes of mounted volumes, only "
        "between pods the store authorizes identically (docs/security.md); a first Mount "
        "always reads; 0: never reuse",
        type=_number(float, 0.0, "a number of seconds"),
    )
    _add(
        stores,
        "cache-size",
        "1000",
        "Vault logins (one per pod) and connections kept",
        type=_number(int, 1, "a positive whole number"),
    )
    _add(
        stores,
        "lease-renew-fraction",
        "0.667",
        "reuse leased secrets and certificates until this fraction of their TTL",
        type=_fraction,
    )
    _add(
        stores,
        "rotation-poll-interval",
        "2m",
        "provider-writes mode: how often written volumes are re-resolved (Go duration; "
        "per SPC: parameter rotationPollInterval)",
        type=_duration,
    )
    _add(
        stores,
        "aws-pod-identity-endpoint",
        "",
        "EKS Pod Identity agent URL (default: the link-local agent, IPv4 then IPv6); AWS "
        "service endpoints follow boto3's AWS_ENDPOINT_URL[_<SERVICE>] variables",
    )

    versions = serve.add_argument_group("object versions (HMAC key)")
    _add(
        versions,
        "hmac-key-file",
        None,
        "key for object versions; without it or --hmac-secret-name a random key is drawn "
        "at start and versions change on every restart",
    )
    _add(
        versions,
        "hmac-secret-name",
        None,
        "Kubernetes Secret holding the version HMAC key (get-or-create, in the daemon's "
        "namespace; re-read every --hmac-refresh-interval and re-created when deleted); "
        "empty: a random key",
        shown="in a cluster, vault-csi-provider-hmac-key when "
        "serving vault, else csiprovider-hmac-key (random if it cannot be read)",
    )
    _add(
        versions,
        "hmac-secret-namespace",
        "",
        "namespace of --hmac-secret-name (default: the daemon's own)",
    )
    _add(
        versions,
        "hmac-refresh-interval",
        "30s",
        "how often the HMAC key Secret is re-read (Go duration)",
        type=_duration,
    )

    ops = serve.add_argument_group("logs, probes, metrics and admin")
    _add(
        ops,
        "admin-socket",
        DEFAULT_ADMIN_SOCKET,
        "Unix socket (0600) of `csiprovider refresh`; empty disables it",
    )
    _add(
        ops,
        "log-format",
        "auto",
        "log line format; auto: text on a terminal, else json",
        choices=["auto", "json", "text"],
    )
    _add(ops, "log-level", "info", "log level", choices=sorted(LOG_LEVELS))
    _add(
        ops,
        "health-addr",
        ":8080",
        "HTTP address of /healthz, /readyz, /health/ready and /metrics; empty disables it",
        type=_address,
    )
    _add(
        ops,
        "metrics-addr",
        "",
        "another HTTP address serving /metrics (and the probes)",
        type=_address,
    )

    kube = serve.add_argument_group("Kubernetes API")
    _add(kube, "kube-api-url", "", "Kubernetes API URL (default: in-cluster)")
    _add(kube, "kube-token-file", "", "bearer token file for --kube-api-url")
    _add(kube, "kube-ca-file", "", "CA bundle for --kube-api-url")
    _add(
        kube,
        "kube-qps",
        "5",
        "Kubernetes API calls per second, after the burst; 0: no limit",
        aliases=["qps"],
        type=_number(float, 0.0, "a number of calls per second"),
    )
    _add(
        kube,
        "kube-burst",
        "10",
        "Kubernetes API calls at once before --kube-qps applies",
        aliases=["burst"],
        type=_number(int, 1, "a positive whole number"),
    )

    vault = serve.add_argument_group(
        "Vault (defaults under the SPC's own settings; the "
        "VAULT_* environment variables are read first)"
    )
    _add(vault, "vault-addr", "", "Vault address (https://, http:// or unix://)")
    _add(vault, "vault-mount", "kubernetes", "auth mount: kubernetes or jwt method")
    _add(vault, "vault-namespace", "", "Vault namespace")
    _add(vault, "vault-tls-ca-cert", "", "CA certificate file")
    _add(vault, "vault-tls-ca-directory", "", "directory of CA certificates")
    _add(vault, "vault-tls-server-name", "", "TLS server name (SNI)")
    _add(vault, "vault-tls-client-cert", "", "client certificate for mTLS")
    _add(vault, "vault-tls-client-key", "", "client key for mTLS")
    _add_bool(vault, "vault-tls-skip-verify", "skip TLS verification")

    compat = serve.add_argument_group(
        "accepted for ASCP's and vault-helm's deployments (their charts run this image unchanged)"
    )
    _add(
        compat,
        "provider-volume",
        None,
        "ASCP: serve <DIR>/aws.sock (as --providers-dir DIR "
        "--name aws); without --driver-writes-secrets the provider writes, as ASCP does",
        env=False,
    )
    _add_bool(
        compat,
        "driver-writes-secrets",
        "ASCP: true: --write-mode driver; false: --write-mode provider",
        env=False,
    )
    _add(
        compat,
        "eks-addon-version",
        "",
        "ASCP: the EKS add-on version (shown in the startup line)",
        env=False,
    )
    _add(
        compat,
        "pod-identity-http-timeout",
        "",
        "ASCP: HTTP timeout of the EKS Pod Identity agent call (Go duration; empty: 5s)",
        env=False,
    )
    _add_bool(compat, "debug", "vault-csi-provider: the same as --log-level debug", env=False)
    compat.add_argument(
        "--version",
        "-version",
        action="store_true",
        help="vault-csi-provider: print the version and exit",
    )
    _add(compat, "output", "json", "vault-csi-provider: format of -version (ignored)", env=False)
    serve.set_defaults(names_env=names_env)

    mount = sub.add_parser("mount", help="mount a SecretProviderClass locally, as the driver would")
    mount.add_argument("--spc", required=True, type=Path, help="SecretProviderClass YAML file")
    mount.add_argument("--spc-name", help="which SecretProviderClass of a file holding several")
    mount.add_argument("--target", required=True, type=Path, help="directory to mount into")
    where = mount.add_mutually_exclusive_group()
    where.add_argument(
        "--providers-dir",
        type=Path,
        default=Path(DEFAULT_PROVIDERS_DIR),
        help="where <spec.provider>.sock is found",
    )
    where.add_argument("--socket", type=Path, help="the provider socket, overriding the lookup")
    mount.add_argument("--pod-name", default="local-pod")
    mount.add_argument(
        "--pod-namespace",
        default=None,
        help="default: the SPC's metadata.namespace, else 'default'",
    )
    mount.add_argument("--pod-uid", default="00000000-0000-0000-0000-000000000000")
    mount.add_argument("--service-account", default="default")
    mount.add_argument(
        "--token",
        action="append",
        type=_pair,
        default=[],
        metavar="AUDIENCE=FILE",
        help="service-account token for an audience, read from FILE; repeatable",
    )
    mount.add_argument(
        "--secret",
        action="append",
        type=_pair,
        default=[],
        metavar="KEY=VALUE",
        help="nodePublishSecretRef data; repeatable (without it the request's secrets are "
        "`null`, as the driver sends for a volume without nodePublishSecretRef)",
    )
    mount.add_argument("--permission", type=_octal, default=0o644, help="default file mode")
    mount.add_argument(
        "--set",
        action="append",
        type=_pair,
        default=[],
        metavar="KEY=VALUE",
        help="override spec.parameters.KEY (e.g. vaultAddress to test an SPC "
        "against a local server); repeatable",
    )
    mount.add_argument(
        "--sync-secret-out",
        type=Path,
        help="render spec.secretObjects as Secret manifests into this file",
    )
    mount.add_argument(
        "--watch",
        type=float,
        metavar="SECONDS",
        help="re-mount every SECONDS with the current versions, like rotation",
    )
    mount.add_argument("--timeout", type=float, default=30.0, help="Mount RPC deadline, seconds")

    encrypt = sub.add_parser(
        "encrypt",
        help="encrypt stdin with AWS KMS or Vault transit and print the object "
        "to paste into an SPC (aws-kms or vault-transit)",
    )
    which = encrypt.add_mutually_exclusive_group(required=True)
    which.add_argument("--key-id", help="AWS KMS key id, ARN or alias/NAME")
    which.add_argument(
        "--vault-transit",
        metavar="KEY",
        help="Vault transit key name (Vault from VAULT_ADDR and VAULT_TOKEN, "
        "or the vault CLI's token file)",
    )
    encrypt.add_argument(
        "--context",
        action="append",
        type=_pair,
        default=[],
        metavar="KEY=VALUE",
        help="KMS encryption context; repeatable",
    )
    encrypt.add_argument(
        "--transit-mount", default="transit", help="mount of the transit engine [default transit]"
    )
    encrypt.add_argument(
        "--transit-context", default="", help="derivation context of a derived transit key (text)"
    )
    encrypt.add_argument(
        "--region",
        default=os.environ.get("AWS_REGION", ""),
        help="KMS region (default: AWS_REGION)",
    )
    encrypt.add_argument("--object-name", default="secret", help="objectName of the snippet")

    check = sub.add_parser(
        "validate", help="check SecretProviderClass files offline (every dialect)"
    )
    check.add_argument("spc", nargs="+", type=Path, help="SecretProviderClass YAML files")
    check.add_argument(
        "--name",
        action="append",
        default=[],
        type=_provider_name,
        help="a provider name your daemons serve besides csiprovider, vault "
        "and aws (checked in the native dialect); repeatable",
    )

    refresh = sub.add_parser(
        "refresh",
        help="provider-writes mode: re-resolve the node's tracked volumes now",
        description="Ask the daemon on this node (over its admin socket) to re-resolve "
        "the volumes it wrote, now, and print each one and whether it changed. In a "
        "cluster: kubectl exec -n csiprovider <provider pod on the node> -- csiprovider "
        "refresh --namespace NS",
    )
    refresh.add_argument("--namespace", default="", help="only volumes of pods in NS")
    refresh.add_argument("--spc", default="", help="only volumes of this SecretProviderClass")
    refresh.add_argument("--pod", default="", help="only this pod's volumes")
    refresh.add_argument(
        "--admin-socket",
        type=Path,
        default=Path(os.environ.get(_env("admin-socket"), DEFAULT_ADMIN_SOCKET)),
        help=f"the daemon's admin socket [default {DEFAULT_ADMIN_SOCKET}]",
    )
    refresh.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for the answer [default 60]"
    )

    sub.add_parser("version", help="print the version")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "version":
        print(__version__)
        return 0
    if args.command == "serve":
        return _serve(args)
    if args.command == "encrypt":
        return _encrypt(args)
    if args.command == "refresh":
        return _refresh(args)
    if args.command == "validate":
        from csiprovider.local.validate import KNOWN_NAMES, validate

        return validate(args.spc, sys.stdout, (*KNOWN_NAMES, *args.name))
    return _mount(args)


def _fail(message: str, code: int = 2) -> int:
    """The one error style of every command: `csiprovider: error: ...` on stderr."""
    print(f"csiprovider: error: {message}", file=sys.stderr)
    return code


def _serve(args: argparse.Namespace) -> int:
    from csiprovider.server import ServeConfig, ServeError, serve
    from csiprovider.service import WriteMode
    from csiprovider.stores.vault.config import VaultDefaults

    if args.version:
        print(__version__)
        return 0
    level = "debug" if args.debug else args.log_level
    fmt = args.log_format
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    logs.configure(fmt, LOG_LEVELS[level])
    providers_dir = args.providers_dir
    names = args.names or [n for n in (args.names_env or "").split(",") if n]
    write_mode: WriteMode = args.write_mode or "driver"
    if args.provider_volume:  # ASCP's deployment: <dir>/aws.sock, the provider writes
        providers_dir = args.provider_volume
        names = names or ["aws"]
        write_mode = args.write_mode or "provider"
    if args.driver_writes_secrets is not None:
        write_mode = "driver" if args.driver_writes_secrets else "provider"
    if not names and not args.endpoint:
        names = ["csiprovider"]
    for name in names:
        try:
            _provider_name(name)
        except argparse.ArgumentTypeError as exc:
            return _fail(f"{_env('names')}: {exc}")
    pod_identity_timeout = 5.0
    if args.pod_identity_http_timeout:
        try:  # as ASCP: an invalid or non-positive value keeps the default
            pod_identity_timeout = _duration(args.pod_identity_http_timeout)
        except argparse.ArgumentTypeError:
            logging.getLogger("csiprovider").warning(
                "ignoring --pod-identity-http-timeout",
                extra={"fields": {"value": args.pod_identity_http_timeout[:32], "using": "5s"}},
            )
    try:
        vault = VaultDefaults.build(
            auth_mount=args.vault_mount,
            address=args.vault_addr,
            namespace=args.vault_namespace,
            ca_cert=args.vault_tls_ca_cert,
            ca_path=args.vault_tls_ca_directory,
            tls_server_name=args.vault_tls_server_name,
            client_cert=args.vault_tls_client_cert,
            client_key=args.vault_tls_client_key,
            skip_verify=args.vault_tls_skip_verify,
        )
    except ValueError as exc:
        return _fail(f"Vault settings: {exc}")
    config = ServeConfig(
        names=names,
        providers_dir=Path(providers_dir),
        write_mode=write_mode,
        file_root=Path(args.file_root) if args.file_root else None,
        hmac_key_file=Path(args.hmac_key_file) if args.hmac_key_file else None,
        mount_timeout=args.mount_timeout,
        shutdown_grace=args.shutdown_grace,
        fetch_workers=args.fetch_workers,
        backend_concurrency=args.backend_concurrency,
        endpoints=args.endpoint,
        health_addr=args.health_addr,
        vault=vault,
        cache_size=args.cache_size,
        cache_ttl=args.cache_ttl,
        renew_fraction=args.lease_renew_fraction,
        hmac_secret_name=args.hmac_secret_name,
        hmac_secret_namespace=args.hmac_secret_namespace,
        hmac_refresh_interval=args.hmac_refresh_interval,
        kube_api_url=args.kube_api_url,
        kube_token_file=args.kube_token_file,
        kube_ca_file=args.kube_ca_file,
        kube_qps=args.kube_qps,
        kube_burst=args.kube_burst,
        aws_pod_identity_endpoint=args.aws_pod_identity_endpoint,
        pod_identity_timeout=pod_identity_timeout,
        eks_addon_version=args.eks_addon_version,
        metrics_addr=args.metrics_addr,
        rotation_poll_interval=args.rotation_poll_interval,
        max_response_bytes=args.max_response_bytes,
        kubelet_pods_dir=args.kubelet_pods_dir,
        vault_flag_address=args.vault_addr,
        admin_socket=Path(args.admin_socket) if args.admin_socket else None,
    )
    if config.file_root is not None and not config.file_root.is_dir():
        return _fail(f"--file-root: {config.file_root} is not a directory")
    try:
        asyncio.run(serve(config))
    except (ServeError, ValueError, OSError) as exc:
        return _fail(str(exc), 1)
    return 0


def _mount(args: argparse.Namespace) -> int:
    from csiprovider.local.mount import MountOptions, run
    from csiprovider.local.spc import SpcError, load_spc

    try:
        spc = load_spc(args.spc, args.spc_name)
    except SpcError as exc:
        return _fail(str(exc))
    tokens: dict[str, str] = {}
    for audience, path in args.token:
        try:
            tokens[audience] = Path(path).read_text().strip()
        except OSError as exc:
            return _fail(f"--token {audience}: cannot read {path}: {exc.strerror}")
    if args.set:
        import dataclasses

        spc = dataclasses.replace(spc, parameters={**spc.parameters, **dict(args.set)})
    socket = args.socket or args.providers_dir / f"{spc.provider}.sock"
    opts = MountOptions(
        spc=spc,
        target=args.target,
        socket=socket,
        pod_name=args.pod_name,
        pod_namespace=args.pod_namespace or spc.namespace or "default",
        pod_uid=args.pod_uid,
        service_account=args.service_account,
        tokens=tokens,
        secrets=dict(args.secret) or None,
        permission=args.permission,
        sync_secret_out=args.sync_secret_out,
        watch=args.watch,
        timeout=args.timeout,
    )
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # --watch output shows up as it happens
    try:
        return asyncio.run(run(opts))
    except KeyboardInterrupt:
        return 0


def _encrypt(args: argparse.Namespace) -> int:
    """Plaintext from stdin (never argv: it would land in shell history and ps)."""
    import base64

    import yaml

    if args.key_id and not args.region:
        return _fail("set --region or AWS_REGION")
    if sys.stdin.isatty():
        print(
            "reading the secret from stdin; end it with Ctrl-D (or pipe it in: "
            "csiprovider encrypt ... < FILE)",
            file=sys.stderr,
        )
    plaintext = sys.stdin.buffer.read()
    if not plaintext:
        return _fail(
            "nothing on stdin to encrypt; pipe the secret in, e.g. "
            '`printf %s "$PASSWORD" | csiprovider encrypt ...`'
        )
    if args.vault_transit:
        return _encrypt_transit(args, plaintext)
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    context = dict(args.context)
    request: dict[str, Any] = {"KeyId": args.key_id, "Plaintext": plaintext}
    if context:
        request["EncryptionContext"] = context
    try:
        kms = boto3.session.Session().client("kms", region_name=args.region)
        blob = kms.encrypt(**request)["CiphertextBlob"]
    except (BotoCoreError, ClientError) as exc:
        return _fail(f"KMS Encrypt failed: {exc}", 1)
        return 1
    entry: dict[str, Any] = {
        "objectName": args.object_name,
        "backend": "aws-kms",
        "region": args.region,
        "ciphertext": base64.b64encode(blob).decode(),
    }
    if context:
        entry["encryptionContext"] = context
    sys.stdout.write(yaml.safe_dump([entry], sort_keys=False, width=1 << 20))
    return 0


def _encrypt_transit(args: argparse.Namespace, plaintext: bytes) -> int:
    """`transit/encrypt/<key>` with the operator's own Vault token (VAULT_ADDR and
    VAULT_TOKEN, as the vault CLI); prints a vault-transit object."""
    import base64

    import hvac
    import requests
    import yaml

    address = os.environ.get("VAULT_ADDR", "")
    if not address:
        return _fail("set VAULT_ADDR (and VAULT_TOKEN) to the Vault that holds the key")
    client = hvac.Client(url=address, namespace=os.environ.get("VAULT_NAMESPACE") or None)
    if not client.token:
        return _fail("no Vault token: set VAULT_TOKEN or log in with the vault CLI")
    options: dict[str, Any] = {}
    if args.transit_context:
        options["context"] = base64.b64encode(args.transit_context.encode()).decode()
    try:
        reply = client.secrets.transit.encrypt_data(
            name=args.vault_transit,
            plaintext=base64.b64encode(plaintext).decode(),
            mount_point=args.transit_mount,
            **options,
        )
    except (hvac.exceptions.VaultError, requests.RequestException) as exc:
        return _fail(f"Vault transit encrypt with key {args.vault_transit!r} failed: {exc}", 1)
    entry: dict[str, Any] = {
        "objectName": args.object_name,
        "backend": "vault-transit",
        "key": args.vault_transit,
        "ciphertext": reply["data"]["ciphertext"],
    }
    if args.transit_mount != "transit":
        entry["mount"] = args.transit_mount
    if args.transit_context:
        entry["context"] = args.transit_context
    sys.stdout.write(yaml.safe_dump([entry], sort_keys=False, width=1 << 20))
    return 0


def _refresh(args: argparse.Namespace) -> int:
    from csiprovider.admin import request_refresh

    if not args.admin_socket.exists():
        return _fail(
            f"no admin socket at {args.admin_socket}: run this where the daemon "
            "runs (kubectl exec into the provider pod on the node), or pass "
            "--admin-socket"
        )
    try:
        answers = asyncio.run(
            request_refresh(args.admin_socket, args.namespace, args.spc, args.pod, args.timeout)
        )
    except (OSError, TimeoutError, ValueError) as exc:
        return _fail(f"the daemon did not answer on {args.admin_socket}: {exc}", 1)
    done = answers[-1] if answers and answers[-1].get("done") else {}
    volumes = [a for a in answers if "target" in a]
    if done.get("mode") not in (None, "provider"):
        print(
            "driver-writes mode: the driver rewrites volumes (its rotation); nothing is "
            "tracked here"
        )
        return 0
    if not volumes:
        print("no tracked volume matches")
        return 0
    for a in volumes:
        detail = f" ({a['error']})" if a.get("error") else ""
        print(f"{a['result']:<9} {a['namespace']}/{a['pod']} spc={a['spc']} {a['target']}{detail}")
    return 1 if any(a["result"] == "failed" for a in volumes) else 0

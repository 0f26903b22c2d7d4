"""Command line: `csiprovider serve`, `csiprovider mount`, `csiprovider version`.

Every `serve` flag can also be set by an environment variable named in its help
(CSIPROVIDER_<FLAG>); a flag on the command line wins over the variable.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from csiprovider import __version__, logs

DEFAULT_PROVIDERS_DIR = "/var/run/secrets-store-csi-providers"
LOG_LEVELS = {"trace": "debug", "debug": "debug", "info": "info", "warn": "warning",
              "warning": "warning", "error": "error", "off": "critical"}
ENV_PREFIX = "CSIPROVIDER_"


def _env(flag: str) -> str:
    return ENV_PREFIX + flag.upper().replace("-", "_")


def _add(
    parser: argparse._ActionsContainer, flag: str, default: str | None, help_text: str,
    aliases: Sequence[str] = (), **kw: Any,
) -> None:
    """A flag whose default comes from CSIPROVIDER_<FLAG> when set; `-flag` works too, as
    Go's flag package accepts it and vault-csi-provider manifests use it; `aliases` are
    other providers' names for it (both forms too)."""
    env = _env(flag)
    value = os.environ.get(env, default)
    names = [form for name in (flag, *aliases) for form in (f"--{name}", f"-{name}")]
    parser.add_argument(*names, default=value, help=f"{help_text} [env {env}]", **kw)


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


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="csiprovider", description=__doc__.splitlines()[0])
    sub = top.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the provider daemon")
    names_env = os.environ.get(_env("names"))
    serve.add_argument(
        "--name", dest="names", action="append",
        help="provider name to serve as <providers-dir>/<name>.sock; repeatable; the name "
        "selects the dialect (vault, aws, anything else: native) "
        f"[env {_env('names')}, comma-separated; default csiprovider]",
    )
    _add(serve, "providers-dir", DEFAULT_PROVIDERS_DIR, "directory the driver scans for sockets")
    _add(serve, "write-mode", "driver",
         "driver: return files to the driver; provider: write them into the target path",
         choices=["driver", "provider"])
    _add(serve, "file-root", None,
         "enable the file backend: a pod reads files under DIR/<pod namespace>/")
    _add(serve, "hmac-key-file", None,
         "key for object versions; without it a random key is drawn at start and "
         "versions change on every restart")
    _add(serve, "mount-timeout", "30", "seconds a Mount may take at most", type=float)
    _add(serve, "shutdown-grace", "10",
         "seconds in-flight Mounts may take to finish on SIGTERM", type=float)
    _add(serve, "fetch-workers", "96", "threads for blocking backend calls (created as "
         "needed; enough for --backend-concurrency calls to each of 3 backends)", type=int)
    _add(serve, "backend-concurrency", "32",
         "requests in flight at most per backend (the rest queue within the Mount deadline)",
         type=int)
    _add(serve, "log-format", "json", "log line format", choices=["json", "text"])
    _add(serve, "log-level", "info", "log level (trace, debug, info, warn, error, off)",
         choices=sorted(LOG_LEVELS))
    serve.add_argument("--endpoint", "-endpoint", action="append", default=[], type=Path,
                       help="an extra socket path to serve, vault-csi-provider style "
                       "(/provider/vault.sock); its file name selects the dialect; repeatable")
    _add(serve, "health-addr", ":8080",
         "HTTP address of /healthz, /readyz, /health/ready and /metrics; empty disables it")
    _add(serve, "metrics-addr", "", "another HTTP address serving /metrics (and the probes)")
    _add(serve, "cache-size", "1000", "Vault logins (one per pod) and connections kept",
         type=int)
    _add(serve, "rotation-poll-interval", "2m",
         "provider-writes mode: how often written volumes are re-resolved (Go duration; "
         "per SPC: parameter rotationPollInterval)")
    _add(serve, "cache-ttl", "60",
         "seconds a Vault or AWS read is reused for republishes of mounted volumes, only "
         "between pods the store authorizes identically (docs/security.md); a first Mount "
         "always reads; 0: never reuse", type=float)
    _add(serve, "lease-renew-fraction", str(2 / 3),
         "reuse leased secrets and certificates until this fraction of their TTL", type=float)
    _add(serve, "hmac-secret-name", "",
         "Kubernetes Secret holding the version HMAC key (get-or-create, in the daemon's "
         "namespace)")
    _add(serve, "hmac-secret-namespace", "", "namespace of --hmac-secret-name")
    _add(serve, "kube-api-url", "", "Kubernetes API URL (default: in-cluster)")
    _add(serve, "kube-token-file", "", "bearer token file for --kube-api-url")
    _add(serve, "kube-ca-file", "", "CA bundle for --kube-api-url")
    _add(serve, "kube-qps", "5", "Kubernetes API calls per second, after the burst (ASCP's "
         "--qps; 0: no limit)", aliases=["qps"], type=float)
    _add(serve, "kube-burst", "10", "Kubernetes API calls at once before --kube-qps applies "
         "(ASCP's --burst)", aliases=["burst"], type=int)
    _add(serve, "aws-pod-identity-endpoint", "",
         "EKS Pod Identity agent URL (default: the link-local agent, IPv4 then IPv6); AWS "
         "service endpoints follow boto3's AWS_ENDPOINT_URL[_<SERVICE>] variables")
    vault = serve.add_argument_group("Vault (defaults under the SPC's own settings; the "
                                     "VAULT_* environment variables are read first)")
    _add(vault, "vault-addr", "", "Vault address (https://, http:// or unix://)")
    _add(vault, "vault-mount", "kubernetes", "auth mount: kubernetes or jwt method")
    _add(vault, "vault-namespace", "", "Vault namespace")
    _add(vault, "vault-tls-ca-cert", "", "CA certificate file")
    _add(vault, "vault-tls-ca-directory", "", "directory of CA certificates")
    _add(vault, "vault-tls-server-name", "", "TLS server name (SNI)")
    _add(vault, "vault-tls-client-cert", "", "client certificate for mTLS")
    _add(vault, "vault-tls-client-key", "", "client key for mTLS")
    vault.add_argument("--vault-tls-skip-verify", "-vault-tls-skip-verify",
                       action="store_true",
                       default=os.environ.get(_env("vault-tls-skip-verify"), "") == "true",
                       help="skip TLS verification [env CSIPROVIDER_VAULT_TLS_SKIP_VERIFY]")
    serve.set_defaults(names_env=names_env)

    mount = sub.add_parser("mount", help="mount a SecretProviderClass locally, as the driver would")
    mount.add_argument("--spc", required=True, type=Path, help="SecretProviderClass YAML file")
    mount.add_argument("--target", required=True, type=Path, help="directory to mount into")
    where = mount.add_mutually_exclusive_group()
    where.add_argument("--providers-dir", type=Path, default=Path(DEFAULT_PROVIDERS_DIR),
                       help="where <spec.provider>.sock is found")
    where.add_argument("--socket", type=Path, help="the provider socket, overriding the lookup")
    mount.add_argument("--pod-name", default="local-pod")
    mount.add_argument("--pod-namespace", default=None,
                       help="default: the SPC's metadata.namespace, else 'default'")
    mount.add_argument("--pod-uid", default="00000000-0000-0000-0000-000000000000")
    mount.add_argument("--service-account", default="default")
    mount.add_argument("--token", action="append", type=_pair, default=[], metavar="AUDIENCE=FILE",
                       help="service-account token for an audience, read from FILE; repeatable")
    mount.add_argument("--secret", action="append", type=_pair, default=[], metavar="KEY=VALUE",
                       help="nodePublishSecretRef data; repeatable")
    mount.add_argument("--permission", type=_octal, default=0o644, help="default file mode")
    mount.add_argument("--set", action="append", type=_pair, default=[], metavar="KEY=VALUE",
                       help="override spec.parameters.KEY (e.g. vaultAddress to test an SPC "
                       "against a local server); repeatable")
    mount.add_argument("--sync-secret-out", type=Path,
                       help="render spec.secretObjects as Secret manifests into this file")
    mount.add_argument("--watch", type=float, metavar="SECONDS",
                       help="re-mount every SECONDS with the current versions, like rotation")
    mount.add_argument("--timeout", type=float, default=30.0, help="Mount RPC deadline, seconds")

    encrypt = sub.add_parser(
        "encrypt", help="encrypt stdin with AWS KMS and print an aws-kms object for an SPC")
    encrypt.add_argument("--key-id", required=True, help="KMS key id, ARN or alias/NAME")
    encrypt.add_argument("--context", action="append", type=_pair, default=[],
                         metavar="KEY=VALUE", help="encryption context; repeatable")
    encrypt.add_argument("--region", default=os.environ.get("AWS_REGION", ""),
                         help="KMS region (default: AWS_REGION)")
    encrypt.add_argument("--object-name", default="secret", help="objectName of the snippet")

    check = sub.add_parser("validate",
                           help="check SecretProviderClass files offline (every dialect)")
    check.add_argument("spc", nargs="+", type=Path, help="SecretProviderClass YAML files")

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
    if args.command == "validate":
        from csiprovider.local.validate import validate

        return validate(args.spc, sys.stdout)
    return _mount(args)


def _serve(args: argparse.Namespace) -> int:
    from csiprovider.compat.go.duration import parse_interval
    from csiprovider.server import ServeConfig, ServeError, serve
    from csiprovider.stores.vault.config import VaultDefaults

    logs.configure(args.log_format, LOG_LEVELS[args.log_level])
    try:
        rotation_interval = parse_interval(args.rotation_poll_interval)
    except ValueError as exc:
        print(f"error: --rotation-poll-interval: {exc}", file=sys.stderr)
        return 2
    names = args.names or [n for n in (args.names_env or "").split(",") if n]
    if not names and not args.endpoint:
        names = ["csiprovider"]
    for name in names:
        if not name or "/" in name or name.startswith("."):
            print(f"error: invalid provider name {name!r}", file=sys.stderr)
            return 2
    config = ServeConfig(
        names=names,
        providers_dir=Path(args.providers_dir),
        write_mode=args.write_mode,
        file_root=Path(args.file_root) if args.file_root else None,
        hmac_key_file=Path(args.hmac_key_file) if args.hmac_key_file else None,
        mount_timeout=args.mount_timeout,
        shutdown_grace=args.shutdown_grace,
        fetch_workers=args.fetch_workers,
        backend_concurrency=args.backend_concurrency,
        endpoints=args.endpoint,
        health_addr=args.health_addr,
        vault=VaultDefaults.build(
            auth_mount=args.vault_mount,
            address=args.vault_addr,
            namespace=args.vault_namespace,
            ca_cert=args.vault_tls_ca_cert,
            ca_path=args.vault_tls_ca_directory,
            tls_server_name=args.vault_tls_server_name,
            client_cert=args.vault_tls_client_cert,
            client_key=args.vault_tls_client_key,
            skip_verify=args.vault_tls_skip_verify,
        ),
        cache_size=args.cache_size,
        cache_ttl=args.cache_ttl,
        renew_fraction=args.lease_renew_fraction,
        hmac_secret_name=args.hmac_secret_name,
        hmac_secret_namespace=args.hmac_secret_namespace,
        kube_api_url=args.kube_api_url,
        kube_token_file=args.kube_token_file,
        kube_ca_file=args.kube_ca_file,
        kube_qps=args.kube_qps,
        kube_burst=args.kube_burst,
        aws_pod_identity_endpoint=args.aws_pod_identity_endpoint,
        metrics_addr=args.metrics_addr,
        rotation_poll_interval=rotation_interval,
        vault_flag_address=args.vault_addr,
    )
    if config.file_root is not None and not config.file_root.is_dir():
        print(f"error: --file-root {config.file_root} is not a directory", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(config))
    except (ServeError, ValueError, OSError) as exc:
        logging.getLogger("csiprovider").error(str(exc))
        return 1
    return 0


def _mount(args: argparse.Namespace) -> int:
    from csiprovider.local.mount import MountOptions, run
    from csiprovider.local.spc import SpcError, load_spc

    try:
        spc = load_spc(args.spc)
    except SpcError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tokens: dict[str, str] = {}
    for audience, path in args.token:
        try:
            tokens[audience] = Path(path).read_text().strip()
        except OSError as exc:
            print(f"error: --token {audience}: cannot read {path}: {exc.strerror}",
                  file=sys.stderr)
            return 2
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
        secrets=dict(args.secret),
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

    import boto3
    import yaml
    from botocore.exceptions import BotoCoreError, ClientError

    plaintext = sys.stdin.buffer.read()
    if not plaintext:
        print("error: nothing on stdin to encrypt", file=sys.stderr)
        return 2
    if not args.region:
        print("error: set --region or AWS_REGION", file=sys.stderr)
        return 2
    context = dict(args.context)
    request: dict[str, Any] = {"KeyId": args.key_id, "Plaintext": plaintext}
    if context:
        request["EncryptionContext"] = context
    try:
        kms = boto3.session.Session().client("kms", region_name=args.region)
        blob = kms.encrypt(**request)["CiphertextBlob"]
    except (BotoCoreError, ClientError) as exc:
        print(f"error: KMS Encrypt failed: {exc}", file=sys.stderr)
        return 1
    entry: dict[str, Any] = {"objectName": args.object_name, "backend": "aws-kms",
                             "region": args.region,
                             "ciphertext": base64.b64encode(blob).decode()}
    if context:
        entry["encryptionContext"] = context
    sys.stdout.write(yaml.safe_dump([entry], sort_keys=False, width=1 << 20))
    return 0

"""The command line as a person meets it: values refused while parsing, naming the flag,
in one error style; Go-style flags; other providers' flags mapped to ours."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from csiprovider.cli import main, parser


def fails(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    assert info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "flag", "hint"),
    [
        (["--health-addr", "localhost"], "--health-addr", "HOST:PORT"),
        (["--mount-timeout", "soon"], "--mount-timeout", "positive number of seconds"),
        (["--fetch-workers", "0"], "--fetch-workers", "positive whole number"),
        (["--rotation-poll-interval", "5x"], "--rotation-poll-interval", "Go duration"),
        (["--lease-renew-fraction", "2"], "--lease-renew-fraction", "between 0 and 1"),
        (["-name", "a/b"], "--name", "spec.provider"),
        (["--vault-tls-skip-verify=maybe"], "--vault-tls-skip-verify", "true or false"),
    ],
)
def test_bad_values_are_refused_at_parse_time_naming_the_flag(
    capsys: pytest.CaptureFixture[str], argv: list[str], flag: str, hint: str
) -> None:
    err = fails(capsys, "serve", *argv)
    assert err.startswith("csiprovider: error: argument ") and flag in err and hint in err
    assert "Traceback" not in err and "invalid literal" not in err


def test_startup_errors_share_the_style(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["serve", "--file-root", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.startswith("csiprovider: error: --file-root: ")


def test_go_style_flags_as_documented() -> None:
    args = parser().parse_args(
        [
            "serve",
            "-name",
            "vault",
            "-name=aws",
            "-vault-tls-skip-verify",
            "-health-addr=:9090",
            "-driver-writes-secrets=false",
        ]
    )
    assert args.names == ["vault", "aws"] and args.vault_tls_skip_verify is True
    assert args.health_addr == ":9090" and args.driver_writes_secrets is False
    off = parser().parse_args(["serve", "--vault-tls-skip-verify=false"])
    assert off.vault_tls_skip_verify is False


def test_help_shows_defaults_in_groups() -> None:
    text = subprocess.run(
        [sys.executable, "-m", "csiprovider", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for group in ("serving:", "stores and caches:", "Kubernetes API:", "accepted for ASCP"):
        assert group in text
    flat = " ".join(text.split())
    assert "--mount-timeout VALUE" in text and "[default 30; env CSIPROVIDER_MOUNT_TIMEOUT]" in flat


def test_mount_without_a_socket_says_how_to_start_serve(tmp_path: Path) -> None:
    spc = tmp_path / "spc.yaml"
    spc.write_text(
        "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\n"
        "metadata: {name: app}\nspec:\n  provider: vault\n  parameters: {}\n"
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "csiprovider",
            "mount",
            "--spc",
            str(spc),
            "--target",
            str(tmp_path / "t"),
            "--providers-dir",
            str(tmp_path / "none"),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert "csiprovider serve --name vault" in out.stdout + out.stderr


def test_mount_picks_one_spc_of_a_multi_document_file(tmp_path: Path) -> None:
    from csiprovider.local.spc import SpcError, load_spc

    doc = (
        "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\n"
        "metadata: {{name: {name}}}\nspec: {{provider: {provider}, parameters: {{}}}}\n"
    )
    path = tmp_path / "two.yaml"
    path.write_text(
        doc.format(name="a", provider="vault") + "---\n" + doc.format(name="b", provider="aws")
    )
    assert load_spc(path, "b").provider == "aws"
    with pytest.raises(SpcError, match="--spc-name"):
        load_spc(path)
    with pytest.raises(SpcError, match="has no SecretProviderClass named 'c'"):
        load_spc(path, "c")


def test_encrypt_says_it_reads_stdin(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "csiprovider", "encrypt", "--key-id", "k", "--region", "eu-west-1"],
        input=b"",
        capture_output=True,
    )
    assert out.returncode == 2 and b"pipe the secret in" in out.stderr

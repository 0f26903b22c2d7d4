"""What decides which values sops encrypts and what its MAC covers, typed values, tampering
and key groups: documents produced by the real sops (3.11) with each setting, mounted
through the in-process daemon and compared with `sops decrypt` (byte for byte, except
YAML: the same data, types and key order). Complements test_sops.py, which covers the
formats, the age identities and the basic refusals."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from testkit import sops
from testkit.requests import mount_request

pytestmark = pytest.mark.sops

NAME = "app-secrets"
_EXT = {"yaml": "yaml", "json": "json", "dotenv": "env", "ini": "ini"}


@pytest.fixture(scope="module")
def key() -> sops.AgeKey:
    return sops.age_key()


def request(document: str, identity: str | None) -> Any:
    req = mount_request([{"objectName": NAME, "backend": "sops", "document": document}])
    req.secrets = json.dumps({"sops-age-key": identity} if identity else {})
    return req


async def mount(stub: Any, document: str, identity: str) -> bytes:
    reply = await stub.Mount(request(document, identity))
    files: dict[str, bytes] = {f.path: f.contents for f in reply.files}
    return files[NAME]


async def refused(stub: Any, document: str, identity: str | None) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Mount(request(document, identity))
    return info.value


def typed(value: Any) -> Any:
    """The data with its types and every map's key order (NaN equal to itself)."""
    if isinstance(value, dict):
        return ("map", [(typed(k), typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("seq", [typed(v) for v in value])
    if isinstance(value, float):
        return ("float", repr(value))
    if isinstance(value, datetime | date):
        return (type(value).__name__, value.isoformat())
    return (type(value).__name__, value)


def assert_same(fmt: str, got: bytes, expected: bytes) -> None:
    if fmt == "yaml":
        assert typed(yaml.safe_load(got)) == typed(yaml.safe_load(expected))
    else:
        assert got == expected


async def assert_mounts_as_sops(stub: Any, document: str, fmt: str, identity: str) -> bytes:
    expected = sops.decrypt(document, fmt, identity)
    got = await mount(stub, document, identity)
    assert_same(fmt, got, expected)
    return got


def assert_refusal(error: grpc.aio.AioRpcError, secrets: Sequence[str], *words: str) -> None:
    """INVALID_ARGUMENT naming the object, saying `words`, quoting no value."""
    details = error.details() or ""
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, details
    assert f"objectName '{NAME}'" in details
    for word in words:
        assert word in details
    for secret in secrets:
        assert secret not in details
    assert "ENC[" not in details


def sops_refuses(document: str, fmt: str, identity: str, match: str) -> None:
    with pytest.raises(RuntimeError, match=match):
        sops.decrypt(document, fmt, identity)


def sops_set(document: str, fmt: str, identity: str, assignments: Sequence[tuple[str, str]]) -> str:
    """`sops set FILE PATH VALUE` for each assignment (VALUE is JSON: typed values)."""
    with tempfile.TemporaryDirectory(prefix="csiprovider-sops-") as tmp:
        path = Path(tmp) / f"doc.{_EXT[fmt]}"
        path.write_text(document)
        for where, value in assignments:
            subprocess.run(
                [
                    str(sops.sops_bin()),
                    "set",
                    "--input-type",
                    fmt,
                    "--output-type",
                    fmt,
                    str(path),
                    where,
                    value,
                ],
                check=True,
                capture_output=True,
                env={**os.environ, "SOPS_AGE_KEY": identity},
            )
        return path.read_text()


def swap_first_two(document: str, pattern: str) -> str:
    """The document with the first group of the first two matches of `pattern` swapped."""
    found = list(re.finditer(pattern, document, re.MULTILINE))
    assert len(found) >= 2, pattern
    first, second = found[0], found[1]
    assert first.group(1) != second.group(1)
    return (
        document[: first.start(1)]
        + second.group(1)
        + document[first.end(1) : second.start(1)]
        + first.group(1)
        + document[second.end(1) :]
    )


# -- which values are encrypted ----------------------------------------------------------

NESTED: dict[str, Any] = {
    "app": {
        "name_plain": "web-frontend-v1",
        "password": "pw-app-v2",
        "tiers": [1, 2.5, True, "tier-v3"],
        "db": {
            "user": "db-user-v4",
            "password_secret": "pw-db-v5",
            "hosts_plain": ["host-a-v6", "host-b-v7"],
            "meta": {"owner": "team-v8", "token": "tok-meta-v9"},
        },
    },
    "public": {"url": "https://public.example/v10", "token": "tok-public-v11"},
    "keys": [{"id": 1, "value": "key-v12"}, {"id": 2, "value": "key-v13"}],
    "config_secret": {"nested": {"deep": "deep-v14"}},
    "settings_plain": {"nested": {"level": "level-v16"}},
    "token": "tok-top-v15",
    "empty_plain": "",
}
NESTED_PLAIN = {
    "yaml": yaml.safe_dump(NESTED, sort_keys=False).encode(),
    "json": json.dumps(NESTED).encode(),
}
# flags: values left readable in the encrypted document, values encrypted in it
SETTINGS: dict[str, tuple[tuple[str, str], list[str], list[str]]] = {
    # a key of the path ending with the suffix leaves the value in plaintext, at any depth
    "unencrypted-suffix": (
        ("--unencrypted-suffix", "_plain"),
        ["web-frontend-v1", "host-a-v6", "host-b-v7", "level-v16"],
        ["pw-app-v2", "pw-db-v5", "tok-meta-v9", "tok-top-v15", "deep-v14"],
    ),
    # only values below a key ending with the suffix are encrypted (depth 1 covers depth 3)
    "encrypted-suffix": (
        ("--encrypted-suffix", "_secret"),
        ["web-frontend-v1", "pw-app-v2", "tok-top-v15", "level-v16"],
        ["pw-db-v5", "deep-v14"],
    ),
    "unencrypted-regex": (
        ("--unencrypted-regex", "^(public|meta|tiers)$"),
        ["tok-public-v11", "tok-meta-v9", "team-v8", "tier-v3"],
        ["pw-app-v2", "pw-db-v5", "key-v12", "tok-top-v15"],
    ),
    # `keys` matches at depth 1: the maps of its list are encrypted whole
    "encrypted-regex": (
        ("--encrypted-regex", "^(password|token|keys)$"),
        ["web-frontend-v1", "pw-db-v5", "deep-v14", "team-v8"],
        ["pw-app-v2", "tok-meta-v9", "tok-public-v11", "key-v12", "key-v13", "tok-top-v15"],
    ),
}


@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("fmt", ["yaml", "json"])
async def test_each_encryption_setting_decrypts_as_sops_does(
    stub: Any, key: sops.AgeKey, fmt: str, setting: str
) -> None:
    flags, readable, hidden = SETTINGS[setting]
    document = sops.encrypt(NESTED_PLAIN[fmt], fmt, [key.recipient], *flags)
    assert flags[1] in document  # recorded in the metadata, which the daemon reads
    for value in readable:
        assert value in document, value
    for value in hidden:
        assert value not in document, value
    got = await assert_mounts_as_sops(stub, document, fmt, key.identity)
    loaded = yaml.safe_load(got) if fmt == "yaml" else json.loads(got)
    assert typed(loaded) == typed(NESTED)


# Keys sops matches with Go's regexp: \d, \w, \b and [[:digit:]] are ASCII-only there,
# (?i) folds Unicode, \Q...\E quotes.
DIALECT: dict[str, str] = {
    "clé": "v-accent",
    "٣x": "v-arabic-digit",
    "9a": "v-ascii-digit",
    "pass_word": "v-pass-word",
    "my.pass": "v-dot-pass",
    "clépass": "v-accent-pass",
    "mypass": "v-mypass",
    "word": "v-word",
}
REGEXES: dict[str, tuple[tuple[str, str], list[str], list[str]]] = {
    r"\w": (
        ("--unencrypted-regex", r"^\w+$"),
        ["v-pass-word", "v-word", "v-ascii-digit"],
        ["v-accent", "v-arabic-digit", "v-dot-pass"],
    ),
    r"\d": (("--encrypted-regex", r"^\d"), ["v-arabic-digit", "v-accent"], ["v-ascii-digit"]),
    "posix": (
        ("--encrypted-regex", "[[:digit:]]"),
        ["v-arabic-digit", "v-word"],
        ["v-ascii-digit"],
    ),
    r"\b": (
        ("--encrypted-regex", r"\bpass"),
        ["v-mypass", "v-word"],
        ["v-pass-word", "v-dot-pass", "v-accent-pass"],
    ),
    "(?i)": (("--unencrypted-regex", "(?i)^CLÉ$"), ["v-accent"], ["v-accent-pass", "v-word"]),
    r"\Q": (("--encrypted-regex", r"\Qmy.pass\E"), ["v-mypass", "v-word"], ["v-dot-pass"]),
}


@pytest.mark.parametrize("case", list(REGEXES))
async def test_key_regexes_match_as_go_regexps(stub: Any, key: sops.AgeKey, case: str) -> None:
    flags, readable, hidden = REGEXES[case]
    plain = yaml.safe_dump(DIALECT, sort_keys=False, allow_unicode=True).encode()
    document = sops.encrypt(plain, "yaml", [key.recipient], *flags)
    for value in readable:
        assert value in document, value
    for value in hidden:
        assert value not in document, value
    got = await assert_mounts_as_sops(stub, document, "yaml", key.identity)
    assert yaml.safe_load(got) == DIALECT


# -- mac_only_encrypted ----------------------------------------------------------------------

MAC_PLAIN = {
    "yaml": b"db:\n  host: db.local\n  password: pw-mac-1\nreplicas: 3\ntoken: tok-mac-2\n",
    "json": b'{"db": {"host": "db.local", "password": "pw-mac-1"}, "replicas": 3, '
    b'"token": "tok-mac-2"}',
    "dotenv": b"host=db.local\npassword=pw-mac-1\nreplicas=3\ntoken=tok-mac-2\n",
    "ini": b"[db]\nhost = db.local\npassword = pw-mac-1\n[app]\nreplicas = 3\ntoken = tok-mac-2\n",
}
MAC_SECRETS = ["pw-mac-1", "tok-mac-2"]


def creation_rule(recipient: str, mac_only: bool) -> str:
    """A repository's .sops.yaml: sops 3.11 sets mac_only_encrypted only from a creation
    rule (no command-line flag)."""
    rule = (
        f"creation_rules:\n"
        f"  - path_regex: doc\\.(yaml|json|env|ini)$\n"
        f"    age: {recipient}\n"
        f"    encrypted_regex: ^(password|token)$\n"
    )
    return rule + ("    mac_only_encrypted: true\n" if mac_only else "")


def drop_token(document: str, fmt: str) -> str:
    """The document without its (encrypted) `token` entry."""
    if fmt == "json":
        tree = json.loads(document)
        del tree["token"]
        return json.dumps(tree)
    kept = [
        line
        for line in document.splitlines(keepends=True)
        if not re.match(r"\s*token\s*[:=]", line)
    ]
    assert len(kept) == len(document.splitlines()) - 1
    return "".join(kept)


@pytest.mark.parametrize("fmt", list(MAC_PLAIN))
async def test_mac_only_encrypted_lets_plaintext_values_change(
    stub: Any, key: sops.AgeKey, fmt: str
) -> None:
    only = sops.encrypt_with(MAC_PLAIN[fmt], fmt, [], config=creation_rule(key.recipient, True))
    full = sops.encrypt_with(MAC_PLAIN[fmt], fmt, [], config=creation_rule(key.recipient, False))
    assert re.search(r"mac_only_encrypted\W+true", only)
    assert "mac_only_encrypted" not in full
    for document in (only, full):
        assert "db.local" in document  # left in plaintext by encrypted_regex
        for secret in MAC_SECRETS:
            assert secret not in document
        await assert_mounts_as_sops(stub, document, fmt, key.identity)

    # a plaintext value edited by hand: sops accepts it when the MAC covers only the
    # encrypted values...
    edited = only.replace("db.local", "db.example")
    got = await assert_mounts_as_sops(stub, edited, fmt, key.identity)
    assert b"db.example" in got
    # ...and refuses it otherwise
    edited = full.replace("db.local", "db.example")
    sops_refuses(edited, fmt, key.identity, "MAC mismatch")
    error = await refused(stub, edited, key.identity)
    assert_refusal(error, [*MAC_SECRETS, "db.example"], "MAC mismatch")

    # encrypted values stay covered: dropping one is refused in both modes
    for document in (only, full):
        dropped = drop_token(document, fmt)
        sops_refuses(dropped, fmt, key.identity, "MAC mismatch")
        error = await refused(stub, dropped, key.identity)
        assert_refusal(error, MAC_SECRETS, "MAC mismatch")


async def test_hand_edited_plaintext_reads_as_sops_reads_yaml(stub: Any, key: sops.AgeKey) -> None:
    """sops reads YAML with yaml.v3: `yes`, `on` and `1:30` are strings, `1e-07` a float,
    `0o17` an int, an unquoted date a timestamp (PyYAML's YAML 1.1 reads these otherwise)."""
    document = sops.encrypt_with(
        MAC_PLAIN["yaml"], "yaml", [], config=creation_rule(key.recipient, True)
    )
    added = (
        "enabled: yes\nwindow: 1:30\non: push\nsmall: 1e-07\noctal: 0o17\n"
        "when: 2024-01-31\nstamp: 2024-01-31 10:20:30.5\nnothing:\n"
    )
    edited = document.replace("\nsops:\n", "\n" + added + "sops:\n", 1)
    assert edited != document
    got = await assert_mounts_as_sops(stub, edited, "yaml", key.identity)
    data = yaml.safe_load(got)
    assert data["on"] == "push"
    assert data["window"] == "1:30"
    assert data["octal"] == 15


# -- typed values ------------------------------------------------------------------------

TYPED: dict[str, bytes] = {
    "yaml": """int: 42
negative: -7
big_int: 9223372036854775807
float: 3.14
float_integral: 2.0
float_small: 1.0e-7
float_big: 1.5e+300
float_inf: .inf
float_nan: .nan
octal: 0o17
hex: 0x1F
t: true
f: false
empty: ''
null_value: null
tilde: ~
unicode: "héllo ☃ 🔑 日本"
multi: |
  line one
    indented
  line three
folded: >
  folded
  text
quoted_number: "1.5"
quoted_bool: "true"
word_yes: yes
sexagesimal: 1:30
date: 2024-01-31
timestamp: 2024-01-31T10:20:30.5+02:00
list: [1, two, 3.5, false, null, '', {k: v}, [nested]]
empty_map: {}
empty_list: []
""".encode(),
    "json": json.dumps(
        {
            "int": 42,
            "negative": -7,
            "big_int": 9223372036854775807,
            "float": 3.14,
            "float_integral": 2.0,
            "float_small": 1e-7,
            "float_big": 1.5e300,
            "t": True,
            "f": False,
            "empty": "",
            "null_value": None,
            "unicode": "héllo ☃ 🔑 日本 \u2028",
            "multi": "line one\n  indented\nline three\n",
            "escapes": 'tab\t"q" \\ <&>',
            "list": [1, "two", 3.5, False, None, "", {"k": "v"}, ["nested"]],
            "empty_map": {},
            "empty_list": [],
        },
        ensure_ascii=False,
    ).encode(),
    "dotenv": "NUMBER=42\nBOOL=true\nEMPTY=\nUNICODE=héllo ☃ 🔑 日本\n"
    "MULTI=line one\\nline two\\n\nSPACES=  padded  \nEQUALS=a=b=c\n"
    'HASH=value # kept\nQUOTES="quoted"\n'.encode(),
    "ini": "[typed]\nnumber = 42\nbool = true\nempty =\nunicode = héllo ☃ 🔑 日本\n"
    'multi = """line one\nline two"""\nspaces = "  padded  "\n'
    "hash = `a#b;c`\nquoted = 'single'\n\"key=with:delims\" = v\n"
    "[other]\nclé = accent\n".encode(),
}


@pytest.mark.parametrize("encrypted", [True, False], ids=["encrypted", "plaintext"])
@pytest.mark.parametrize("fmt", list(TYPED))
async def test_typed_values_survive(stub: Any, key: sops.AgeKey, fmt: str, encrypted: bool) -> None:
    """Every value type a format holds, encrypted (its type in ENC[...]) or left in
    plaintext (its text in the MAC)."""
    flags = () if encrypted else ("--unencrypted-regex", ".")
    document = sops.encrypt(TYPED[fmt], fmt, [key.recipient], *flags)
    assert ("ENC[" in document.split("sops")[0]) == encrypted
    await assert_mounts_as_sops(stub, document, fmt, key.identity)


@pytest.mark.parametrize("fmt", ["dotenv", "ini", "json", "yaml"])
async def test_values_set_with_their_type(stub: Any, key: sops.AgeKey, fmt: str) -> None:
    """`sops set` stores JSON-typed values, in dotenv and ini documents too (a float,
    an int read as a float, a bool): decrypted as sops writes them (stores.ValToString:
    `2.0`, `1E+21`)."""
    plain = {
        "dotenv": b"KEY=v\n",
        "ini": b"[s]\nkey = v\n",
        "json": b'{"s": {"key": "v"}}',
        "yaml": b"s:\n  key: v\n",
    }[fmt]
    where = "" if fmt == "dotenv" else '["s"]'
    values = [
        "2.0",
        "1.5",
        "1e21",
        "3",
        "true",
        "false",
        '"text"',
        "-0.0",
        "123456789.5",
        "0.000001",
        '"line one\\nline two"',
    ]
    document = sops.encrypt(plain, fmt, [key.recipient])
    document = sops_set(
        document, fmt, key.identity, [(f'{where}["v{i}"]', value) for i, value in enumerate(values)]
    )
    assert "type:float" in document and "type:bool" in document
    await assert_mounts_as_sops(stub, document, fmt, key.identity)


# -- tampering -----------------------------------------------------------------------------

TAMPER_SECRETS = ["db-user-T1", "pw-db-T2", "pw-api-T3", "tok-api-T4"]
TAMPER_PLAIN = {
    "yaml": b"db:\n  port: 5432\n  user: db-user-T1\n  password: pw-db-T2\n"
    b"api:\n  password: pw-api-T3\n  token: tok-api-T4\n",
    "json": b'{"db": {"port": 5432, "user": "db-user-T1", "password": "pw-db-T2"}, '
    b'"api": {"password": "pw-api-T3", "token": "tok-api-T4"}}',
    "dotenv": b"PORT=5432\nDB_USER=db-user-T1\nPASSWORD=pw-db-T2\nPASSWORD_API=pw-api-T3\n"
    b"TOKEN=tok-api-T4\n",
    "ini": b"[db]\nport = 5432\nuser = db-user-T1\npassword = pw-db-T2\n"
    b"[api]\npassword = pw-api-T3\ntoken = tok-api-T4\n",
}
# the two ciphertexts to swap: the same key name in two maps (yaml, json, ini), two keys
PASSWORDS = {
    "yaml": r"^\s+password: (ENC\[[^\]]+\])",
    "json": r'"password": "(ENC\[[^\]]+\])"',
    "dotenv": r"^PASSWORD(?:_API)?=(ENC\[[^\]]+\])",
    "ini": r"^password\s*=\s*(ENC\[[^\]]+\])",
}
# one entry to delete
PORT = {
    "yaml": r"^\s+port: ENC\[[^\]]+\]\n",
    "json": r'"port": "ENC\[[^\]]+\]",\s*',
    "dotenv": r"^PORT=ENC\[[^\]]+\]\n",
    "ini": r"^port\s*=\s*ENC\[[^\]]+\]\n",
}


@pytest.mark.parametrize("fmt", list(TAMPER_PLAIN))
async def test_swapped_or_deleted_values_are_refused(stub: Any, key: sops.AgeKey, fmt: str) -> None:
    document = sops.encrypt(TAMPER_PLAIN[fmt], fmt, [key.recipient])
    await assert_mounts_as_sops(stub, document, fmt, key.identity)
    # a ciphertext is bound to its whole path: `db:password:` is not `api:password:`
    swapped = swap_first_two(document, PASSWORDS[fmt])
    sops_refuses(swapped, fmt, key.identity, "Could not decrypt")
    error = await refused(stub, swapped, key.identity)
    assert_refusal(error, TAMPER_SECRETS, "failed to decrypt")
    # a deleted entry leaves every other ciphertext valid: the MAC catches it
    deleted, count = re.subn(PORT[fmt], "", document, count=1, flags=re.MULTILINE)
    assert count == 1
    sops_refuses(deleted, fmt, key.identity, "MAC mismatch")
    error = await refused(stub, deleted, key.identity)
    assert_refusal(error, TAMPER_SECRETS, "MAC mismatch")


@pytest.mark.parametrize("where", ["nested", "top"])
async def test_reordered_yaml_map_is_refused(stub: Any, key: sops.AgeKey, where: str) -> None:
    document = sops.encrypt(TAMPER_PLAIN["yaml"], "yaml", [key.recipient])
    tree = yaml.safe_load(document)
    if where == "nested":
        db = tree["db"]
        tree["db"] = {"port": db["port"], "password": db["password"], "user": db["user"]}
    else:
        tree = {"api": tree["api"], "db": tree["db"], "sops": tree["sops"]}
    reordered = yaml.safe_dump(tree, sort_keys=False)
    sops_refuses(reordered, "yaml", key.identity, "MAC mismatch")
    error = await refused(stub, reordered, key.identity)
    assert_refusal(error, TAMPER_SECRETS, "MAC mismatch")
    # the same document in its own order, written by PyYAML, mounts
    await assert_mounts_as_sops(
        stub, yaml.safe_dump(yaml.safe_load(document), sort_keys=False), "yaml", key.identity
    )


async def test_lastmodified_is_authenticated(stub: Any, key: sops.AgeKey) -> None:
    document = sops.encrypt(TAMPER_PLAIN["yaml"], "yaml", [key.recipient])
    stamp = re.search(r'lastmodified: "([0-9T:-]+)Z"', document)
    assert stamp is not None
    # the MAC is encrypted with lastmodified as additional data: another time is refused
    other = stamp[1][:-1] + ("1" if stamp[1][-1] != "1" else "2")
    for changed in (f"{other}Z", f"{stamp[1]}+01:00"):
        edited = document.replace(stamp[0], f'lastmodified: "{changed}"')
        sops_refuses(edited, "yaml", key.identity, "Cannot decrypt MAC")
        error = await refused(stub, edited, key.identity)
        assert_refusal(error, TAMPER_SECRETS, "MAC")
    # the same time written otherwise is the same time for sops (time.Parse, RFC 3339)
    for same in (f"{stamp[1]}+00:00", f"{stamp[1]}.25Z"):
        edited = document.replace(stamp[0], f'lastmodified: "{same}"')
        await assert_mounts_as_sops(stub, edited, "yaml", key.identity)


async def test_mac_edits_are_refused(stub: Any, key: sops.AgeKey) -> None:
    document = sops.encrypt(TAMPER_PLAIN["json"], "json", [key.recipient])
    mac = re.search(r'"mac": "ENC\[AES256_GCM,data:([A-Za-z0-9+/]+)', document)
    assert mac is not None
    # one character of the encrypted MAC changed
    flipped = mac[1][:5] + ("A" if mac[1][5] != "A" else "B") + mac[1][6:]
    edited = document.replace(mac[1], flipped)
    sops_refuses(edited, "json", key.identity, "Cannot decrypt MAC")
    error = await refused(stub, edited, key.identity)
    assert_refusal(error, TAMPER_SECRETS, "MAC")
    # an authentic MAC (with its lastmodified) of another version of the same document:
    # it decrypts, but does not match these values
    later = sops_set(document, "json", key.identity, [('["db"]["port"]', "5433")])
    later_meta = json.loads(later)["sops"]
    tree = json.loads(document)
    tree["sops"]["mac"], tree["sops"]["lastmodified"] = (
        later_meta["mac"],
        later_meta["lastmodified"],
    )
    transplanted = json.dumps(tree)
    sops_refuses(transplanted, "json", key.identity, "MAC mismatch")
    error = await refused(stub, transplanted, key.identity)
    assert_refusal(error, TAMPER_SECRETS, "MAC mismatch")
    await assert_mounts_as_sops(stub, later, "json", key.identity)
    # no MAC at all
    del tree["sops"]["mac"]
    error = await refused(stub, json.dumps(tree), key.identity)
    assert_refusal(error, TAMPER_SECRETS, "no MAC")


# -- key groups ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["yaml", "json", "dotenv", "ini"])
async def test_several_key_groups_are_refused_clearly(
    stub: Any, key: sops.AgeKey, fmt: str
) -> None:
    other = sops.age_key()
    config = (
        f"creation_rules:\n"
        f"  - path_regex: .*\n"
        f"    key_groups:\n"
        f"      - age: [{key.recipient}]\n"
        f"      - age: [{other.recipient}]\n"
    )
    document = sops.encrypt_with(
        MAC_PLAIN[fmt], fmt, ["--shamir-secret-sharing-threshold", "2"], config=config
    )
    assert "shamir_threshold" in document
    both = f"{key.identity}\n{other.identity}\n"
    assert b"pw-mac-1" in sops.decrypt(document, fmt, both)  # a valid document for sops
    for identities in (both, key.identity, None):
        error = await refused(stub, document, identities)
        details = error.details() or ""
        assert_refusal(
            error,
            MAC_SECRETS,
            "2 key groups",
            "Shamir",
            "shamir_threshold 2",
            "does not support",
            "one key group",
            "sops updatekeys",
        )
        assert key.identity not in details and other.identity not in details

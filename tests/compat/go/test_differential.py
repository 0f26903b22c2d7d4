"""Differential tests: each Go emulation in csiprovider/compat/go against the real Go library.

The oracles (tests/compat/go/oracle/*/main.go) are built once per session with Debian's Go
toolchain and Debian's packaged gopkg.in/yaml.v3, sigs.k8s.io/yaml (with yaml.v2) and the
standard library (testkit/golang.py). Every emulation gets a fixed corpus, one case per
rule its module documents, plus cases generated with Hypothesis (derandomized, so a run is
reproducible); all of an emulation's cases go to its Go program as one batch.

Which Go we match: upstream's releases (vault-csi-provider, ASCP) are built with Go 1.26
and sigs.k8s.io/yaml v1.6.0; Debian bookworm packages Go 1.19 and sigs.k8s.io/yaml v1.3.0.
The known differences between those versions, and only those, are normalised or pinned
here (see `go_output_as_upstream` and `test_pinned_version_differences`):

- encoding/json: Go >= 1.22 escapes \\b and \\f as `\\b` and `\\f`; Go 1.19 writes `\\u0008`
  and `\\u000c`.
- time.Parse (yaml timestamps): Go >= 1.20 refuses zone offsets past 24 hours or 60
  minutes (`+25:00`), Go 1.19 accepts them; Go >= 1.20 ignores fractional seconds past
  nine digits, Go 1.19 refuses them. The generators stay clear of both and the pinned
  test checks one case of each.
- sigs.k8s.io/yaml >= 1.4: "unsupported map key" (1.3.0: "Unsupported map key").
- regexp/syntax: Go >= 1.22 reads `(?<name>` as a named group (and `(?<=` as a bad name);
  Go 1.19 refuses `(?<` as Perl syntax. sops's releases are built with a Go >= 1.22; the
  generators write no `(?<` and the pinned test checks both forms.

Not generated, because the emulations document them as known divergences: a redefined
anchor (PyYAML refuses it), YAML syntax error wording (PyYAML's), nesting deeper than
Python's recursion limit, keys whose Go values differ but whose Python values are equal
(`1`, `true`, `1.0` in one mapping), and for ASCP our own `encoding` key.
"""

from __future__ import annotations

import base64
import math
import re
import struct
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from csiprovider.compat.go import duration, encoding_json, regexp, strconv, yaml_v3
from csiprovider.stores.aws import objects
from testkit.golang import Oracle, go_version
from tests.compat.go import generators as gen

# Cases per emulation: (fixed, generated); filled as the tests run, checked at the end.
COUNTS: dict[str, tuple[int, int]] = {}
GENERATED_PER_EMULATION = {
    "yaml_v3": 1500,
    "sigs_yaml": 1200,
    "encoding_json": 1000,
    "duration": 500,
    "strconv": 200,
    "regexp": 2500,
    "format_float": 1000,
}
MIN_GENERATED = 2000


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def fffd_per_byte(data: bytes) -> str:
    """How a UTF-8 consumer reads Go's bytes: one U+FFFD per invalid byte."""
    return data.decode("utf-8", "csiprovider.compat.go.encoding_json.fffd")


def collect(strategy: st.SearchStrategy[Any], count: int) -> list[Any]:
    """`count` distinct examples of `strategy`, drawn up front (deterministically: the same
    cases every run) for one batch."""
    drawn: list[Any] = []

    @settings(
        max_examples=count * 2,
        database=None,
        derandomize=True,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def draw(case: Any) -> None:
        drawn.append(case)

    draw()
    unique = list(dict.fromkeys(drawn))[:count]  # small documents do repeat
    assert len(unique) == count, f"only {len(unique)} distinct cases of {count}"
    return unique


# ------------------------------------------------------------------ Go version pins


def go_minor() -> int:
    return int(go_version().removeprefix("go").split(".")[1])


_JSON_ESCAPE = re.compile(rb"\\(u0008|u000c|.)", re.S)


def go_output_as_upstream(out: bytes) -> bytes:
    """Go 1.19's json.Marshal bytes as Go >= 1.22 writes them: \\u0008 → \\b, \\u000c → \\f.

    We match Go >= 1.22 because vault-csi-provider's releases are built with it (Go 1.26);
    the rewrite touches escape sequences only (a literal backslash is itself escaped)."""
    if go_minor() >= 22:
        return out

    def short(match: re.Match[bytes]) -> bytes:
        return {b"u0008": b"\\b", b"u000c": b"\\f"}.get(match.group(1), match.group())

    return _JSON_ESCAPE.sub(short, out)


def sigs_error_as_upstream(message: str) -> str:
    """sigs.k8s.io/yaml 1.3.0's "Unsupported map key" as v1.4+ (ASCP's v1.6.0) words it."""
    return message.replace(": Unsupported map key of type", ": unsupported map key of type")


# ------------------------------------------------------------------ yaml.v3 (vault)

YAML_V3_DECODER_ERRORS = (
    "yaml: unmarshal errors:",
    "yaml: cannot decode ",
    "yaml: !!binary value",
    "yaml: map merge requires",
    "yaml: anchor '",
    "yaml: document contains excessive aliasing",
    "yaml: invalid map key:",
    "yaml: unknown anchor '",
)


def yaml_v3_ours(text: str) -> dict[str, Any]:
    try:
        entries = yaml_v3.load_objects(text)
    except yaml_v3.YamlError as exc:
        return {"err": str(exc)}
    secrets = []
    for entry in entries:
        secret: dict[str, Any] = {
            name: entry.get(name, "").encode("utf-8", "surrogateescape")
            for name in ("objectName", "secretPath", "secretKey", "method", "encoding")
        }
        secret["filePermission"] = entry.get("filePermission", 0)
        args = entry.get("secretArgs")
        if args is None:
            secret["secretArgs"] = None
        else:
            try:
                secret["secretArgs"] = {"json": encoding_json.dumps(args)}
            except (TypeError, ValueError) as exc:
                secret["secretArgs"] = {"err": str(exc)}
        secrets.append(secret)
    return {"secrets": secrets}


def yaml_v3_go(answer: dict[str, Any]) -> dict[str, Any]:
    if "panic" in answer:
        return {"panic": answer["panic"]}
    if not answer["ok"]:
        return {"err": fffd_per_byte(unb64(answer["err"]))}
    secrets = []
    for s in answer.get("secrets") or []:
        secret: dict[str, Any] = {
            name: unb64(s[name])
            for name in ("objectName", "secretPath", "secretKey", "method", "encoding")
        }
        secret["filePermission"] = s["filePermission"]
        args = s["secretArgs"]
        if args is None:
            secret["secretArgs"] = None
        elif args["err"] is not None:
            secret["secretArgs"] = {"err": unb64(args["err"]).decode()}
        else:
            secret["secretArgs"] = {"json": go_output_as_upstream(unb64(args["json"]))}
        secrets.append(secret)
    return {"secrets": secrets}


def yaml_v3_compare(ours: dict[str, Any], go: dict[str, Any]) -> bool:
    if "panic" in go:
        # yaml.v3 3.0.1 crashes (a collection as a key next to a merge: "hash of
        # unhashable type"); refusing the document is the only sane match.
        return "err" in ours
    if "err" in go and "err" in ours:
        if go["err"].startswith(YAML_V3_DECODER_ERRORS):
            return bool(ours["err"] == go["err"])
        # A YAML syntax error: the wording is PyYAML's (documented); the class must agree.
        return ours["err"].startswith("yaml: ") and not ours["err"].startswith(
            YAML_V3_DECODER_ERRORS
        )
    return ours == go


YAML_V3_FIXED = [
    # YAML 1.2 booleans and nulls vs 1.1 words, into string fields and into interface{}
    "- objectName: true\n  secretKey: yes\n  method: on\n  encoding: ~\n",
    "- secretArgs: {a: yes, b: no, c: on, d: off, e: y, f: n, g: True, h: tRUE, i: FALSE}\n",
    "- secretArgs: {a: ~, b: null, c: Null, d: NULL, e: nULL, f: , g: '~', h: \"null\"}\n",
    "- objectName: ~\n  secretPath: null\n  secretKey:\n  method: ''\n",
    # octal and other integer forms, into fs.FileMode and interface{}
    "- filePermission: 0600\n",
    "- filePermission: 0o600\n",
    "- filePermission: 0O644\n",
    "- filePermission: 600\n",
    "- filePermission: 0x1a4\n",
    "- filePermission: 0b110100100\n",
    "- filePermission: +0644\n",
    "- filePermission: 0_644\n",
    "- filePermission: 08\n",
    "- filePermission: 420.9\n",
    "- filePermission: '0600'\n",
    "- filePermission: -1\n",
    "- filePermission: 4294967296\n",
    "- filePermission: 4294967295\n",
    "- filePermission: .nan\n",
    "- filePermission: .inf\n",
    "- filePermission: -0.5\n",
    "- filePermission: true\n",
    "- filePermission: rw-r--r--\n",
    "- filePermission: ~\n",
    "- filePermission: 2001-12-14\n",
    "- filePermission: 0o1234567012345\n",
    "- filePermission: !!float 420\n",
    "- filePermission: [1]\n",
    "- filePermission: {a: 1}\n",
    "- filePermission: éééééééé\n",
    "- filePermission: '😀😀😀'\n",
    "- secretArgs: {a: 0777, b: 0o777, c: -0o17, d: 0x1F, e: -0x1f, f: 0b101, g: -0b101}\n",
    "- secretArgs: {a: 1_000, b: 0x_1f, c: 1__0, d: 1_, e: _1, f: 0x, g: 0b, h: 0b102}\n",
    "- secretArgs: {a: 9223372036854775807, b: 18446744073709551615, "
    "c: 18446744073709551616, d: -9223372036854775809}\n",
    # floats
    "- secretArgs: {a: 1.5, b: -1.5e3, c: 1., d: .5, e: +.5, f: 1e3, g: 1E3, h: 089}\n",
    "- secretArgs: {a: 1_0.5, b: 99999999999999999999, c: 1e400, d: .5e, e: ._5, f: 1e-400}\n",
    "- secretArgs: {a: .inf}\n",
    "- secretArgs: {a: -.Inf}\n",
    "- secretArgs: {a: .nan}\n",
    "- secretArgs: {a: .nAn, b: inf, c: +inf, d: 0x1p-2}\n",
    "- secretArgs: {a: 0.1, b: 1e21, c: 1e20, d: 1e-7, e: 5e-324, f: -0.0, g: 1e6}\n",
    # timestamps: into interface{} they are time.Time (RFC 3339 in JSON)
    "- secretArgs: {a: 2001-12-14, b: 2001-1-2, c: 0000-02-29, d: 2001-12-14t21:59:43Z}\n",
    "- secretArgs: {a: 2001-12-14T21:59:43.10-05:00, b: '2001-12-14 21:59:43.10'}\n",
    "- secretArgs:\n    a: 2001-12-14 21:59:43.10\n    b: 2001-12-14 21:59:43\n",
    "- secretArgs: {a: 2001-13-14, b: 2001-02-30, c: 2001-12-14T21:59:43, d: 20011-12-14}\n",
    "- secretArgs: {a: 2001-12-14T21:59:43+24:00, b: 2001-12-14T21:59:43,5Z}\n",
    "- secretArgs: {a: 2001-12-14T21:59:43.123456789Z, b: 2001-12-14T1:2:3Z}\n",
    "- secretArgs: {a: !!timestamp 2001-12-14, b: !!timestamp x}\n",
    "- secretKey: 2001-12-14\n",
    # quoted vs plain, tags
    "- secretKey: '007'\n  objectName: \"a\\tb\"\n  method: !!str 12\n",
    "- secretArgs: {a: '42', b: \"0777\", c: !!str 42, d: !!int '42', e: !!float 1}\n",
    "- secretArgs: {a: !!bool true, b: !!null '', c: !!binary aGVsbG8=, d: !custom 12}\n",
    "- secretArgs: {a: !!int abc}\n",
    "- secretArgs: {a: !!bool yes}\n",
    "- secretArgs: {a: !!float x}\n",
    "- secretArgs: {a: !!binary '@@'}\n",
    "- secretArgs: {a: !!float 18446744073709551615}\n",
    "- objectName: !!binary /w==\n",
    "- objectName: !!binary 8J+YgA==\n",
    "- secretArgs: {a: !!binary /w==}\n",
    "- secretArgs:\n    a: |\n      12\n    b: >\n      x\n      y\n",
    '- secretArgs: {a: ! 12, b: ! true, c: ! "12", d: <<}\n',
    "- filePermission: <<\n",
    "- secretArgs: {! <<: {x: 1}}\n",
    "- secretArgs: {a: kv/data/db?version=2}\n",
    "- secretPath: kv/data/db?version=2\n",
    # merge keys, anchors, aliases
    "- &base\n  objectName: a\n  secretPath: p\n  secretArgs: &args {x: 1, y: 2}\n"
    "- <<: *base\n  objectName: b\n  secretArgs:\n    <<: *args\n    y: 3\n",
    "- secretArgs: {<<: [{a: 1, b: 1}, {b: 2, c: 2}], c: 3}\n",
    "- secretArgs: {'<<': {a: 1}}\n",
    "- secretArgs: {<<: 1}\n",
    "- secretArgs: {<<: [1]}\n",
    "- secretArgs: &a {b: *a}\n",
    "- secretArgs: {a: &x 1, b: *x, c: *y}\n",
    "- secretArgs: {a: 1, <<: {a: 2, b: 2}}\n",
    "- secretArgs: {<<: {a: 2}, a: 1}\n",
    "- {<<: {objectName: x}, objectName: y}\n",
    "- {objectName: y, <<: {objectName: x, secretKey: k}}\n",
    # duplicate keys (anywhere, also unknown ones) and their line numbers
    "- objectName: a\n  secretPath: p\n  objectName: b\n",
    "- secretArgs:\n    a: 1\n    'a': 2\n",
    "- unknown: 1\n  unknown: 2\n",
    "a: 1\na: 2\n",
    "- secretArgs:\n    n:\n      - {x: 1, x: 2}\n",
    "- objectName: [a]\n  filePermission: '0600'\n- secretKey: {}\n",
    # non-string keys, type errors, nesting
    "- secretArgs: {2: a, true: b, ~: c, x: d}\n",
    "- secretArgs: {x: {2: a, b: c}}\n",
    "- secretArgs: {x: {1.5: a}}\n",
    "- secretArgs: {x: {!!binary aGk=: a}}\n",
    "- secretArgs: {x: [1, {y: [2, {z: 3}]}]}\n",
    "- secretArgs: {x: {[1]: a}}\n",
    "objectName: a\n",
    "just some text\n",
    "'a'\n",
    "42\n",
    "- a\n",
    "- [a]\n",
    "- objectName: {a: 1}\n",
    "- objectName: [a]\n",
    "- secretArgs: [a]\n",
    "- secretArgs: text\n",
    "- secretArgs: éééééééé\n",
    "- ~\n- objectName: a\n",
    "",
    "\n",
    "# comment\n",
    "~",
    "null",
    "[]",
    "---\n",
    "- objectName: a\n---\n- [broken\n",
    # JSON of secretArgs: escaping, key order
    '- secretArgs: {b: 1, a: "<&>", B: "\\u2028", é: "\\b\\f\\x01", _: 2}\n',
    "- objectName: a\n  secretFormat: data\n  other: 0x10\n  bad: {a: 1, a: 2}\n",
    # syntax errors (class only)
    "- objectName: a\n  secretPath: [b\n",
    "- a: b: c\n",
    "\t- a\n",
]


def test_yaml_v3(go_oracles: dict[str, Oracle]) -> None:
    generated = collect(gen.objects_document(gen.VAULT), GENERATED_PER_EMULATION["yaml_v3"])
    cases = YAML_V3_FIXED + generated
    answers = go_oracles["yamlv3"].run({"in": b64(text.encode())} for text in cases)
    failures = []
    for text, answer in zip(cases, answers, strict=True):
        ours, go = yaml_v3_ours(text), yaml_v3_go(answer)
        if not yaml_v3_compare(ours, go):
            failures.append((text, ours, go))
    COUNTS["yaml_v3"] = (len(YAML_V3_FIXED), len(generated))
    assert not failures, _report(failures)


# ------------------------------------------------------------------ sigs.k8s.io/yaml (ASCP)

_DESC_FIELDS = (
    "objectName",
    "objectAlias",
    "objectVersion",
    "objectVersionLabel",
    "objectType",
    "filePermission",
)


def ascp_ours(text: str) -> dict[str, Any]:
    try:
        descriptors = objects.decode(text)
    except objects.ObjectsError as exc:
        return {"err": str(exc).removeprefix("Failed to load SecretProviderClass: ")}
    out: list[dict[str, Any] | None] = []
    for d in descriptors:
        if d is None:
            out.append(None)
            continue
        out.append(
            {
                "objectName": d.object_name,
                "objectAlias": d.object_alias,
                "objectVersion": d.object_version,
                "objectVersionLabel": d.object_version_label,
                "objectType": d.object_type,
                "filePermission": d.file_permission,
                "jmesPath": [(j.path, j.object_alias, j.file_permission) for j in d.jmes_path],
                "failoverObject": (
                    d.failover.object_name,
                    d.failover.object_version,
                    d.failover.object_version_label,
                ),
            }
        )
    return {"descriptors": out}


def ascp_go(answer: dict[str, Any]) -> dict[str, Any]:
    if "panic" in answer:
        return {"panic": answer["panic"]}
    if not answer["ok"]:
        return {"err": sigs_error_as_upstream(fffd_per_byte(unb64(answer["err"])))}
    out: list[dict[str, Any] | None] = []
    for d in answer.get("descriptors") or []:
        if d is None:
            out.append(None)
            continue
        entry: dict[str, Any] = {name: unb64(d[name]).decode() for name in _DESC_FIELDS}
        entry["jmesPath"] = [
            tuple(unb64(j[k]).decode() for k in ("path", "objectAlias", "filePermission"))
            for j in d["jmesPath"] or []
        ]
        f = d["failoverObject"]
        entry["failoverObject"] = tuple(
            unb64(f[k]).decode() for k in ("objectName", "objectVersion", "objectVersionLabel")
        )
        out.append(entry)
    return {"descriptors": out}


_SIGS_SYNTAX = re.compile(
    r"error converting YAML to JSON: yaml: (line \d+: )?(?!cannot decode|"
    r"unknown anchor|map merge|anchor '|invalid map key|!!binary|"
    r"document contains excessive)"
)
_UNSUPPORTED_KEY = re.compile(
    r"(error converting YAML to JSON: unsupported map key of type: "
    r"[^,]*, key: [^,]*), value: .*",
    re.S,
)


_KEY_TAGS = {"tag:yaml.org,2002:int": "!!int", "tag:yaml.org,2002:null": "!!null"}


def unsupported_keys(text: str) -> int:
    """How many mapping keys in the document sigs.k8s.io/yaml cannot turn into a string
    (nil or uint64), counting every place an alias repeats them. With more than one, Go
    names whichever its randomised map iteration meets first."""
    try:
        root = next(yaml.compose_all(text, Loader=yaml_v3.ComposeLoader), None)
    except yaml.YAMLError:
        return 0
    count = 0

    def walk(node: Any, depth: int) -> None:
        nonlocal count
        if depth > 50:
            return
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                # plain keys, and keys tagged !!int or !!null (`!!int 18446744073709551615`)
                explicit = (
                    _KEY_TAGS.get(key.tag or "") if isinstance(key, yaml.ScalarNode) else None
                )
                if isinstance(key, yaml.ScalarNode) and (explicit or not (key.style or key.tag)):
                    try:
                        tag, resolved = yaml_v3.resolve(explicit or "", key.value)
                    except yaml_v3.ResolveError:
                        tag, resolved = "", None
                    count += tag == "!!null" or (tag == "!!int" and resolved > 2**63 - 1)
                walk(key, depth + 1)
                walk(value, depth + 1)
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                walk(item, depth + 1)

    walk(root, 0)
    return count


def ascp_compare(ours: dict[str, Any], go: dict[str, Any], several_keys: bool) -> bool:
    if "err" in go and "err" in ours:
        if _SIGS_SYNTAX.match(go["err"]):
            return bool(_SIGS_SYNTAX.match(ours["err"]))
        key_error = _UNSUPPORTED_KEY.fullmatch(go["err"])
        if key_error and several_keys:
            # sigs.k8s.io/yaml walks Go maps in random order: with several nil or uint64
            # keys in a document, which one Go reports varies from run to run.
            return bool(_UNSUPPORTED_KEY.fullmatch(ours["err"]))
        if key_error and "map[interface {}]interface {}{" in go["err"]:
            # %#v of a Go map prints its keys in an order fmtsort derives from type
            # addresses; the rest of the message must match.
            return bool(ours["err"].startswith(key_error.group(1) + ", value: "))
        return bool(ours["err"] == go["err"])
    return ours == go


ASCP_FIXED = [
    # YAML 1.1 scalars into string fields: their JSON text
    "- {objectName: yes, objectAlias: no, objectVersion: on, objectVersionLabel: off}\n",
    "- {objectName: y, objectAlias: N, objectVersion: True, objectVersionLabel: tRUE}\n",
    "- {objectName: ~, objectAlias: null, objectVersion: '', objectVersionLabel: '~'}\n",
    "- {objectName: 0600, objectAlias: 0o600, objectVersion: 0x1F, objectType: 0b101}\n",
    "- {objectName: 1_000, objectAlias: 08, objectVersion: 09.5, objectType: -0b101}\n",
    "- {objectName: 1.5, objectAlias: 1e3, objectVersion: 1.23456789, objectType: 1e21}\n",
    "- {objectName: 123456789.0, objectAlias: 16777217.0, objectVersion: 1e6, "
    "objectType: 0.00001}\n",
    "- {objectName: .inf, objectAlias: -.Inf, objectVersion: .nan, objectType: 3.5e38}\n",
    "- {objectName: 18446744073709551615, objectAlias: 9223372036854775808, "
    "objectVersion: -9223372036854775809}\n",
    "- {objectName: 2001-12-14, objectAlias: 2001-12-14T21:59:43.10-05:00, "
    "objectVersion: 190:20:30, objectType: 1:30}\n",
    "- {objectName: !!binary aGVsbG8=, objectAlias: !!binary /w==, objectType: !!str 12}\n",
    "- {objectName: !!int '42', objectAlias: !!bool 'yes', objectVersion: !!float '2'}\n",
    "- {objectName: !!int abc}\n",
    "- {objectName: !!bool x}\n",
    "- {objectName: !!null x}\n",
    "- {objectName: !!binary '@@'}\n",
    "- {objectName: !!float 18446744073709551615}\n",
    "- {objectName: \"0600\", objectAlias: '1.50', filePermission: 0600}\n",
    # keys: case-insensitive, folded (long s, Kelvin sign), exact name wins, sorted JSON order, unknown
    "- {ObjectName: a, objectname: b}\n",
    "- {objectName: a, ObjectName: b}\n",
    "- {OBJECTNAME: a, objectName: b, ObjectName: c}\n",
    "- {objectVer\u017fionLabel: a, FILEPERMISSION: b, objectName: x}\n",
    "- {objectName: a, ObjectName: ~}\n",
    "- {ObjectName: a, objectName: ~}\n",
    "- {objectName: x, unknown: {a: [1, 2]}, other: .inf}\n",
    "- {objectName: x, other: .nan}\n",
    "- {objectName: x, other: [1, .inf]}\n",
    "- {objectName: x, other: {~: 1}}\n",
    "- {objectName: x, ~: 1}\n",
    "- {objectName: x, other: {18446744073709551615: a}}\n",
    "- {objectName: x, other: {1: a, 1.5: b, true: c, .inf: d, 2001-12-14: e}}\n",
    "- {objectName: x, 7: a}\n",
    # nested structs and slices
    "- objectName: x\n  jmesPath:\n    - path: a\n      objectAlias: b\n      filePermission: 0600\n"
    "    - {Path: c, OBJECTALIAS: d}\n    - ~\n  failoverObject: {objectName: y, "
    "ObjectVersion: 2, objectVersionLabel: yes}\n",
    "- {objectName: x, jmesPath: ~, failoverObject: ~}\n",
    "- {objectName: x, jmesPath: []}\n",
    "- {objectName: x, jmesPath: a}\n",
    "- {objectName: x, jmesPath: 5}\n",
    "- {objectName: x, jmesPath: {path: a}}\n",
    "- {objectName: x, jmesPath: [a]}\n",
    "- {objectName: x, jmesPath: [5]}\n",
    "- {objectName: x, jmesPath: [[a]]}\n",
    "- {objectName: x, jmesPath: [{path: [a]}]}\n",
    "- {objectName: x, jmesPath: [{path: {a: b}}]}\n",
    "- {objectName: x, failoverObject: a}\n",
    "- {objectName: x, failoverObject: [a]}\n",
    "- {objectName: x, failoverObject: {objectName: [a]}}\n",
    "- {objectName: {a: b}}\n",
    "- {objectName: [a], filePermission: [b]}\n",
    "- {objectName: x, objectAlias: [a]}\n- {objectName: [b]}\n",
    # the root and the entries
    "objectName: x\n",
    "a\n",
    "5\n",
    "true\n",
    "- a\n",
    "- 5\n",
    "- [a]\n",
    "- ~\n- {objectName: x}\n",
    "",
    "~",
    "[]",
    "# only a comment\n",
    "- \n",
    # merges and anchors, yaml.v2's order (a merge overrides keys before it)
    "- &b {objectName: a, objectAlias: b}\n- {<<: *b, objectAlias: c}\n",
    "- {objectAlias: c, <<: {objectAlias: d, objectName: e}}\n",
    "- {<<: [{objectName: a}, {objectName: b, objectType: t}]}\n",
    "- {<<: 1}\n",
    "- {<<: [1]}\n",
    "- &a {objectName: *a}\n",
    "- {objectName: *nope}\n",
    "- {'<<': {objectName: a}}\n",
    "- {objectName: a, objectName: b}\n",
    # syntax errors (class only)
    "- {objectName: [a}\n",
    "- a: b: c\n",
]


def test_sigs_yaml(go_oracles: dict[str, Oracle]) -> None:
    generated = collect(gen.objects_document(gen.ASCP), GENERATED_PER_EMULATION["sigs_yaml"])
    cases = ASCP_FIXED + generated
    answers = go_oracles["ascp"].run({"in": b64(text.encode())} for text in cases)
    failures = []
    for text, answer in zip(cases, answers, strict=True):
        ours, go = ascp_ours(text), ascp_go(answer)
        if not ascp_compare(ours, go, several_keys=unsupported_keys(text) > 1):
            failures.append((text, ours, go))
    COUNTS["sigs_yaml"] = (len(ASCP_FIXED), len(generated))
    assert not failures, _report(failures)


# ------------------------------------------------------------------ encoding/json

JSON_ROUNDTRIP_FIXED = [
    b'{"b":1,"a":{"z":[],"y":{}},"B":null,"\xc3\xa9":true,"_":false,"~":"x"}',
    b'{"\\ud83d\\ude00":1,"\\uffff":2}',
    b'"<script>&</script>"',
    b'"quote \\" backslash \\\\"',
    b'"\\n\\r\\t\\b\\f\\/"',
    b'"\\u0000\\u0001\\u001f\\u007f"',
    b'"\\u2028\\u2029"',
    b'"\xe2\x80\xa8"',
    b'"\\ud800"',
    b'"a\\udcffb"',
    b'"\\udc00\\ud800"',
    b'"\\ud800\\u0041"',
    b'"\xef\xbf\xbd"',
    b'"a\xe2\x82b\xffc"',
    b'"\xed\xa0\x80"',
    b'"\xc0\xaf"',
    b'"\xf4\x90\x80\x80"',
    b"0",
    b"-0",
    b"1.0",
    b"1e3",
    b"1E+3",
    b"1.5e-10",
    b"12345678901234567890",
    b"-0.000",
    b"123456789012345678901234567890.123456789",
    b"1e400",
    b"[1.10,2.0e0]",
    b"01",
    b"1.",
    b".5",
    b"+1",
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"[1,]",
    b'{"a":1,}',
    b'{"a":1,"a":2}',
    b'{"a":{"b":1},"a":[1]}',
    b"",
    b"   ",
    b"\xef\xbb\xbf{}",
    b"nul",
    b"{} x",
    b"[1] [2]",
    b"1 x",
    b"1x",
    b'"a"x',
    b'"a" x',
    b"true false",
    b"truex",
    b"null,",
    b'\n {"z":{"b":[1.10,{"d":null,"c":"<"}],"a":true},"a":"\\u00e9\\/"} \n',
    b"[" * 200 + b"]" * 200,
    b'{"a":' * 100 + b"1" + b"}" * 100,
    b'"\x7f\x80"',
    b'"\t"',
    b'"a\nb"',
    b"'a'",
    b'{"a" 1}',
    b"{a:1}",
    b"[1 2]",
]
JSON_STRING_FIXED = [
    b"plain",
    b"<script>&</script>",
    b"\b\f\n\r\t",
    b"\x00\x01\x1f\x7f",
    b"\xe2\x80\xa8\xe2\x80\xa9",
    b"\xff",
    b"a\xe2\x82b",
    b"\xed\xa0\x80",
    b"\xef\xbf\xbd",
    b"\xf0\x9f\x98\x80",
    b"",
    b"\\/\"'",
]
JSON_FLOAT_FIXED = [
    0.0,
    -0.0,
    1.0,
    0.1,
    1e20,
    1e21,
    1e-6,
    1.5e-7,
    1e-100,
    123456.789,
    5e-324,
    1.7976931348623157e308,
    2.2250738585072014e-308,
    -1e-7,
    1e-5,
    12345678.0,
    math.nan,
    math.inf,
    -math.inf,
    1e100,
    9007199254740993.0,
    0.3,
]
JSON_NUMBER_FIXED = [
    "",
    "0",
    "-0",
    "1.0",
    "1e3",
    "01",
    "NaN",
    "1.",
    "+1",
    "0x10",
    "é",
    'a"b',
    "1e",
    " 1",
    "1\n",
    "\x00",
    "\u2028",
]


def json_ours(case: dict[str, Any]) -> dict[str, Any]:
    op, data = case["op"], unb64(case.get("in"))
    try:
        if op == "roundtrip":
            try:
                value = encoding_json.loads(data)
            except ValueError:
                return {"decodeErr": True}
            return {"out": encoding_json.dumps(value)}
        if op == "string":
            return {"out": encoding_json.dumps(data.decode("utf-8", "surrogateescape"))}
        if op == "float":
            return {
                "out": encoding_json.dumps(
                    struct.unpack("<d", struct.pack("<Q", int(case["bits"])))[0]
                )
            }
        return {"out": encoding_json.dumps(encoding_json.Number(data.decode()))}
    except (TypeError, ValueError) as exc:
        return {"err": str(exc)}


def json_go(answer: dict[str, Any]) -> dict[str, Any]:
    if "panic" in answer:
        return {"panic": answer["panic"]}
    if answer.get("decodeErr"):
        return {"decodeErr": True}
    if answer.get("err"):
        return {"err": fffd_per_byte(unb64(answer["err"]))}
    return {"out": go_output_as_upstream(unb64(answer.get("out")))}


def _float_case(x: float) -> dict[str, Any]:
    return {"op": "float", "bits": str(struct.unpack("<Q", struct.pack("<d", x))[0])}


def test_encoding_json(go_oracles: dict[str, Oracle]) -> None:
    fixed: list[dict[str, Any]] = (
        [{"op": "roundtrip", "in": b64(d)} for d in JSON_ROUNDTRIP_FIXED]
        + [{"op": "string", "in": b64(d)} for d in JSON_STRING_FIXED]
        + [_float_case(x) for x in JSON_FLOAT_FIXED]
        + [{"op": "number", "in": b64(n.encode())} for n in JSON_NUMBER_FIXED]
    )
    n = GENERATED_PER_EMULATION["encoding_json"]
    generated: list[dict[str, Any]] = (
        [{"op": "roundtrip", "in": b64(d)} for d in collect(gen.json_document(), n * 3 // 5)]
        + [{"op": "string", "in": b64(d)} for d in collect(gen.json_string_content(), n // 5)]
        + [_float_case(x) for x in collect(st.floats(), n // 5)]
    )
    cases = fixed + generated
    answers = go_oracles["gojson"].run(cases)
    failures = []
    for case, answer in zip(cases, answers, strict=True):
        ours, go = json_ours(case), json_go(answer)
        if ours != go:
            failures.append((case, ours, go))
    COUNTS["encoding_json"] = (len(fixed), len(generated))
    assert not failures, _report(failures)


# ------------------------------------------------------------------ durations, booleans

DURATION_FIXED = [
    "0",
    "-0",
    "+0",
    "",
    "-",
    "+",
    "1",
    "1s",
    "-1s",
    "+1s",
    "1.5h",
    "1h30m",
    "300ms",
    ".5s",
    "5.s",
    ".s",
    "-.s",
    "1.s",
    "1ns",
    "1us",
    "1µs",
    "1μs",
    "1ms",
    "1m",
    "1h",
    "1d",
    "1S",
    "1sec",
    "1µ",
    "1u",
    "2h45m30.5s",
    "1.0000000001s",
    "0.000000001s",
    "0.0000000001s",
    "9223372036854775807ns",
    "9223372036854775808ns",
    "-9223372036854775808ns",
    "-9223372036854775809ns",
    "9223372036854775807.9ns",
    "2562047h",
    "2562048h",
    "2562047h47m16.854775807s",
    "2562047h47m16.854775808s",
    "-2562047h47m16.854775808s",
    "18446744073709551616ns",
    "1.99999999999999999999999h",
    "0.1h0.1m",
    "1h1h1h",
    "1s1",
    "3.000000000000000000001s",
    "1 s",
    " 1s",
    "1s ",
    "1\ts",
    "1é",
    '1"s',
    "1\\s",
    "1\x01",
    "1.5.5s",
    "..5s",
    "1e3s",
    "0x10s",
    "\u0661s",
]
BOOL_FIXED = [
    "1",
    "t",
    "T",
    "TRUE",
    "true",
    "True",
    "0",
    "f",
    "F",
    "FALSE",
    "false",
    "False",
    "yes",
    "no",
    "tRUE",
    "",
    " true",
    "on",
    'a"b',
    "a\\b",
    "é",
    "\t",
    "\x01",
    "\u2028",
    "😀",
    "\x7f",
    "\u00ad",
    "\n",
]


def duration_ours(data: bytes) -> dict[str, Any]:
    try:
        return {"ns": duration.parse_nanoseconds(data.decode("utf-8", "surrogateescape"))}
    except ValueError as exc:
        return {"err": str(exc).encode("utf-8", "surrogateescape")}


def bool_ours(data: bytes) -> dict[str, Any]:
    try:
        return {"bool": strconv.parse_bool(data.decode("utf-8", "surrogateescape"))}
    except ValueError as exc:
        return {"err": str(exc).encode("utf-8", "surrogateescape")}


def scalar_go(answer: dict[str, Any], op: str) -> dict[str, Any]:
    if not answer["ok"]:
        return {"err": unb64(answer["err"])}
    return {"ns": int(answer["ns"])} if op == "duration" else {"bool": answer["bool"]}


def test_duration_and_parse_bool(go_oracles: dict[str, Oracle]) -> None:
    durations = [t.encode() for t in DURATION_FIXED] + [b"1\xff", b"1\xc2", b"\xffs"]
    bools = [t.encode() for t in BOOL_FIXED] + [b"\xff", b"t\xc3"]
    gen_durations = collect(gen.duration_text(), GENERATED_PER_EMULATION["duration"])
    gen_bools = collect(gen.bool_text(), GENERATED_PER_EMULATION["strconv"])
    cases = [("duration", d) for d in durations + gen_durations] + [
        ("bool", b) for b in bools + gen_bools
    ]
    answers = go_oracles["scalars"].run({"op": op, "in": b64(data)} for op, data in cases)
    failures = []
    for (op, data), answer in zip(cases, answers, strict=True):
        ours = duration_ours(data) if op == "duration" else bool_ours(data)
        go = scalar_go(answer, op)
        if ours != go:
            failures.append((data, ours, go))
    COUNTS["duration"] = (len(durations), len(gen_durations))
    COUNTS["strconv"] = (len(bools), len(gen_bools))
    assert not failures, _report(failures)


# ------------------------------------------------------------------ regexp, FormatFloat (sops)

REGEXP_FIXED: list[tuple[str, str]] = [
    # \d \w \s \b are ASCII-only
    (r"\d", "3"),
    (r"\d", "\u0663"),
    (r"^\d+$", "\u0663\u0664"),
    (r"^\pN+$", "\u0663\u0664"),
    (r"^[0-9]+$", "\u0663"),
    (r"[\x{660}-\x{669}]", "\u0663"),
    (r"\w", "é"),
    (r"^\w+$", "clé"),
    (r"^\w+$", "api_key"),
    (r"\W", "é"),
    (r"\s", "\u00a0"),
    (r"\s", "\v"),
    (r"\s", "\t"),
    (r"\S", " "),
    (r"\bkey\b", "api_key"),
    (r"\bkey\b", "api-key"),
    (r"\bé", "é"),
    (r"\B", "é"),
    (r"é\b", "aé"),
    # POSIX classes (ASCII), negated ones, negated classes
    ("[[:digit:]]", "\u0663"),
    ("[[:digit:]]", "7"),
    ("[[:alpha:]]", "é"),
    ("[[:^alpha:]]", "é"),
    ("^[[:word:]]+$", "a_1"),
    ("[[:upper:]]", "É"),
    ("(?i)[[:upper:]]", "a"),
    ("[[:lower:]]", "ß"),
    ("[[:punct:]]", "-"),
    ("[[:punct:]]", "¿"),
    ("[[:xdigit:]]", "f"),
    ("[[:blank:]]", "\t"),
    ("[[:space:]]", "\v"),
    ("[[:cntrl:]]", "\x7f"),
    ("[[:print:]]", "é"),
    ("[[:graph:]]", " "),
    ("[[:ascii:]]", "é"),
    ("[[:alnum:]]", "é"),
    ("[^[:alpha:]]", "é"),
    ("[^a-z]", "é"),
    (r"[^\d]", "\u0663"),
    (r"[^\x00-\x7f]", "é"),
    ("[^]a]", "]"),
    ("[]a]", "]"),
    (r"[^\n]", "\n"),
    # (?i) with non-ASCII letters and Unicode's special folds
    ("(?i)é", "É"),
    ("(?i)ÉTÉ", "été"),
    ("(?i)straße", "STRASSE"),
    ("(?i)ß", "ẞ"),
    ("(?i)k", "\u212a"),
    ("(?i)s", "\u017f"),
    ("(?i)ω", "\u2126"),
    ("(?i)i", "İ"),
    ("(?i)I", "\u0131"),
    ("(?i)\u03c3", "ς"),
    ("(?i)[a-z]+$", "ÄB"),
    ("(?i)[é-ö]", "Ö"),
    ("é", "É"),
    ("(?i)ж", "Ж"),
    # Unicode classes
    (r"^\pL+$", "clé"),
    (r"\pL", "\u0663"),
    (r"\pN", "½"),
    (r"\p{Greek}", "Ω"),
    (r"\PL", "é"),
    (r"\p{Han}", "中"),
    (r"\p{^Greek}", "a"),
    (r"\P{^Greek}", "\u03b1"),
    (r"\pL", "😀"),
    (r"\p{So}", "😀"),
    (r"\p{Lu}", "É"),
    (r"\p{Nd}", "\u0663"),
    (r"\p{Arabic}", "\u0663"),
    (r"\p{Any}", "\n"),
    (r"[\p{L}\d]{3}", "é1x"),
    (r"\pL{100}", "é" * 100),
    # \Q...\E, hex and octal escapes
    (r"\Qa.b\E", "a.b"),
    (r"\Qa.b\E", "axb"),
    (r"\Q(*)", "(*)"),
    (r"x\Q\E*", ""),
    (r"\Qa\\E", "a\\"),
    (r"\x{263a}", "☺"),
    (r"\x{1F600}", "😀"),
    (r"\x41", "A"),
    (r"\101", "A"),
    (r"\x{10FFFF}", "\U0010ffff"),
    (r"\.", "a"),
    (r"\_", "_"),
    # anchors: $ is the end of text (no newline before it) unless (?m)
    ("^data$", "data"),
    ("^data$", "data\n"),
    ("(?m)^data$", "x\ndata\ny"),
    (r"\Adata\z", "data"),
    (r"data\z", "data\n"),
    ("^", ""),
    ("$", ""),
    ("(?m)$", "a\n"),
    (r"^\z", ""),
    ("a^", "a"),
    # alternation, unanchored search, repetition
    ("^(data|stringData)$", "stringData"),
    ("^(data|stringData)$", "metadata"),
    ("data|stringData", "metadata"),
    ("^(?:a|ab)$", "ab"),
    ("^a{2,3}$", "aaaa"),
    ("^a{2,3}$", "aaa"),
    ("^a{2}$", "aa"),
    ("a{,2}", "a{,2}"),
    ("^(ab){2,}$", "ababab"),
    ("^a{0}$", ""),
    ("a{1000}", "a" * 1000),
    ("^a{1,}?$", "aa"),
    ("^(a|b)*?c$", "ababc"),
    ("", ""),
    ("", "key"),
    ("^password$", "PASSWORD"),
    ("^(?i)password$", "PASSWORD"),
    # runes, not bytes: UTF-8 subjects, emoji
    ("^.{3}$", "😀é中"),
    ("^.$", "😀"),
    ("^..$", "😀"),
    ("😀", "key😀"),
    ("[😀-😂]", "😁"),
    ("^[^a]$", "中"),
    ("(?s)^.$", "\n"),
    ("^.$", "\n"),
    ("^.$", "\u2028"),
    # invalid UTF-8 in the subject: one U+FFFD per byte
    ("^.$", "\udcff"),
    (r"\x{fffd}", "\udcff"),
    ("^..$", "\udce2\udc82"),
    ("é", "\udcc3\udca9"),
    ("^...$", "\udced\udca0\udc80"),
    ("^a.b$", "a\udcffb"),
    ("\ufffd", "\udcff"),
    # flags mid-pattern, named groups (repeated names are fine in Go)
    ("a(?i)b", "aB"),
    ("a(?i)b", "AB"),
    ("(?i)a(?-i)b", "Ab"),
    ("(?i)a(?-i)b", "AB"),
    ("a(?i:b)c", "aBc"),
    ("a(?i:b)c", "aBC"),
    ("(?U)^a+?$", "aaa"),
    ("(?m)^b", "a\nb"),
    ("(?i)(?-i:a)", "A"),
    ("(?is-m:.)", "\n"),
    ("(?P<key>data)", "data"),
    ("(?P<1>a)", "a"),
    ("(?P<n>a)(?P<n>b)", "ab"),
    ("(?P<k_1>x)", "x"),
    ("(?)", ""),
    ("(?:)", ""),
    ("(?i)", "x"),
    # what Go refuses: lookaround, backreferences, possessive and atomic groups, \C, \Z ...
    ("a(?=b)", "ab"),
    ("a(?!b)", "ac"),
    (r"(a)\1", "aa"),
    ("(?P<n>a)(?P=n)", "aa"),
    ("(?P>n)", ""),
    ("(?>a)", "a"),
    ("a++", "a"),
    ("(?(1)a|b)", "b"),
    (r"\C", "a"),
    (r"[\C]", "a"),
    (r"\Z", ""),
    (r"\G", ""),
    (r"\K", ""),
    (r"\8", ""),
    ("(?P<é>x)", "x"),
    ("(?P<>x)", "x"),
    ("(?P<a-b>x)", "x"),
    ("(?P<n", "x"),
    ("(?'n'x)", "x"),
    (r"\p{Foo}", "a"),
    (r"\pX", "a"),
    (r"\p{Letter}", "a"),
    ("[[:foo:]]", "a"),
    ("[z-a]", "a"),
    ("a{1001}", "a"),
    ("(a{500}){3}", "a"),
    ("x{2}{3}", "x"),
    ("x**", "x"),
    ("x{2,1}?", "x"),
    ("x*{1001}", "x"),
    ("(a", "a"),
    ("a)", "a"),
    ("[a", "a"),
    ("[]", ""),
    ("a\\", "a"),
    ("*", ""),
    ("+a", "a"),
    (r"\x{110000}", ""),
    (r"\x{", ""),
    (r"\x{}", ""),
    (r"\xZ", ""),
    (r"\x4(", ""),
    ("(?z)", ""),
    ("(?i", ""),
    ("(?i-)", ""),
    ("(?-)", ""),
    (r"[\Q]\E]", "]"),
    (r"\E", ""),
    (r"[a-\pL]", ""),
    (r"[a\p", ""),
    ("a\udcff", "a"),
    ("(?=x)\udcff", ""),
    ("\udcffa(", ""),
    ("[\udcff]", ""),
    (r"\Qa" + "\udcff" + r"b\E", ""),
    ("(?P<\udcff>a)", ""),
    ("(?i\udcff)", ""),
    ("(?m(?P<é>x)", ""),
    (r"\x{263a(?P<é>x)", ""),
    ("a)(?P<é>x)", ""),
    ("(?P<é>x)a)", ""),
    ("x{2,1}" + r"\C", ""),
]


def regexp_ours(pattern: str, subject: str) -> dict[str, Any]:
    try:
        return {"match": regexp.compile(pattern).search(subject)}
    except regexp.RegexpError as exc:
        return {"err": str(exc).encode("utf-8", "surrogateescape")}


def regexp_go(answer: dict[str, Any]) -> dict[str, Any]:
    return {"match": answer["bool"]} if answer["ok"] else {"err": unb64(answer["err"])}


def _regexp_case(pattern: str, subject: str) -> dict[str, Any]:
    return {
        "op": "regexp",
        "pattern": b64(pattern.encode("utf-8", "surrogateescape")),
        "in": b64(subject.encode("utf-8", "surrogateescape")),
    }


def test_regexp(go_oracles: dict[str, Oracle]) -> None:
    """regexp.MatchString as sops calls it on each key; Go's error text when it refuses."""
    generated = collect(gen.regexp_case(), GENERATED_PER_EMULATION["regexp"])
    cases = REGEXP_FIXED + generated
    answers = go_oracles["scalars"].run(_regexp_case(p, s) for p, s in cases)
    failures, outcomes = [], set()
    for (pattern, subject), answer in zip(cases, answers, strict=True):
        ours, go = regexp_ours(pattern, subject), regexp_go(answer)
        outcomes.add(str(ours.get("match", "err")))
        if ours != go:
            failures.append(((pattern, subject), ours, go))
    COUNTS["regexp"] = (len(REGEXP_FIXED), len(generated))
    assert not failures, _report(failures)
    assert outcomes == {"True", "False", "err"}  # matches, misses and refusals all ran


FLOAT_FIXED = [
    0.0,
    -0.0,
    5e-324,
    -5e-324,
    2.2250738585072014e-308,
    2.225073858507201e-308,
    1e-7,
    1.5e-7,
    1e-5,
    0.0001,
    1e21,
    1e20,
    123456789.0,
    2.0,
    1.5,
    0.1,
    0.3,
    100.0,
    1e6,
    1.5e300,
    1.7976931348623157e308,
    math.inf,
    -math.inf,
    math.nan,
    0.5,
    2.5,
    0.125,
    0.05,
    0.95,
    99.5,
    9.5,
    1234.5678,
    -0.25,
    3.4028235e38,
    3.5e38,
    1e-45,
    16777217.0,
    9007199254740993.0,
    0.1 + 0.2,
    1 / 3,
]
# sops's forms first: the MAC ('f', -1), stores.ValToString ('G', -1, then 'f', 1).
FLOAT_FORMS = [
    ("f", -1),
    ("G", -1),
    ("f", 1),
    ("g", -1),
    ("e", -1),
    ("E", 3),
    ("f", 0),
    ("g", 0),
    ("g", 3),
    ("G", 17),
    ("e", 20),
    ("f", 30),
]


def _bits(value: float) -> int:
    return int(struct.unpack("<Q", struct.pack("<d", value))[0])


def _float(bits: int) -> float:
    return float(struct.unpack("<d", struct.pack("<Q", bits))[0])


def test_format_float(go_oracles: dict[str, Oracle]) -> None:
    """strconv.FormatFloat in the forms sops writes floats with, and the others."""
    fixed = [(_bits(v), fmt, prec, 64) for v in FLOAT_FIXED for fmt, prec in FLOAT_FORMS]
    # float32: among the shortest digits, two as close (…1875 → …187 or …188): the even
    float32_ties = [1722.71875, -50921.1875, 264.484375, 7916.09375, 2200287.735]
    fixed += [(_bits(v), "g", -1, 32) for v in FLOAT_FIXED + float32_ties]
    fixed += [(0x7FF8000000000001, "f", -1, 64), (0xFFF0000000000001, "G", -1, 64)]  # NaNs
    generated = collect(gen.format_float_case(), GENERATED_PER_EMULATION["format_float"])
    cases = fixed + generated
    answers = go_oracles["scalars"].run(
        {"op": "formatfloat", "bits": str(bits), "fmt": fmt, "prec": prec, "bitSize": size}
        for bits, fmt, prec, size in cases
    )
    failures = []
    for (bits, fmt, prec, size), answer in zip(cases, answers, strict=True):
        ours = strconv.format_float(_float(bits), size, fmt=fmt, prec=prec)
        if ours != answer["text"]:
            failures.append(((_float(bits), fmt, prec, size), ours, answer["text"]))
    COUNTS["format_float"] = (len(fixed), len(generated))
    assert not failures, _report(failures)


# ------------------------------------------------------------------ pins and totals


def test_pinned_version_differences(go_oracles: dict[str, Oracle]) -> None:
    """The version differences this file normalises, checked one by one against the
    Go at hand, so that a change of toolchain shows up here rather than as noise."""
    minor = go_minor()
    # encoding/json: \b and \f (Go >= 1.22 short escapes; ours matches those).
    (answer,) = go_oracles["gojson"].run([{"op": "string", "in": b64(b"\b\f")}])
    raw = unb64(answer["out"])
    assert raw == (b'"\\b\\f"' if minor >= 22 else b'"\\u0008\\u000c"')
    assert encoding_json.dumps("\b\f") == b'"\\b\\f"' == go_output_as_upstream(raw)
    # time.Parse: a zone offset past 24 hours is refused by Go >= 1.20 (upstream), so
    # yaml.v3 keeps the scalar as a string; Go 1.19 read it as a timestamp.
    text = "- secretArgs: {a: 2001-12-14T21:59:43.10+25:00}\n"
    (answer,) = go_oracles["yamlv3"].run([{"in": b64(text.encode())}])
    go_json = unb64(answer["secrets"][0]["secretArgs"]["json"])
    ours = encoding_json.dumps(yaml_v3.load_objects(text)[0]["secretArgs"])
    assert ours == b'{"a":"2001-12-14T21:59:43.10+25:00"}'
    assert go_json == (ours if minor >= 20 else b'{"a":"2001-12-14T21:59:43.1+25:00"}')
    # time.Parse: fractional seconds past nanoseconds are ignored by Go >= 1.20, so the
    # scalar is a timestamp; Go 1.19 refused the layout and kept the text.
    text = "- secretArgs: {a: 2001-12-14T21:59:43.1234567891Z}\n"
    (answer,) = go_oracles["yamlv3"].run([{"in": b64(text.encode())}])
    go_json = unb64(answer["secrets"][0]["secretArgs"]["json"])
    ours = encoding_json.dumps(yaml_v3.load_objects(text)[0]["secretArgs"])
    assert ours == b'{"a":"2001-12-14T21:59:43.123456789Z"}'
    assert go_json == (ours if minor >= 20 else b'{"a":"2001-12-14T21:59:43.1234567891Z"}')
    # sigs.k8s.io/yaml: "Unsupported map key" (v1.3.0) is "unsupported map key" in v1.4+.
    (answer,) = go_oracles["ascp"].run([{"in": b64(b"- {~: 1}\n")}])
    message = "unsupported map key of type: %!s(<nil>), key: <nil>, value: 1"
    assert message in sigs_error_as_upstream(unb64(answer["err"]).decode())
    with pytest.raises(objects.ObjectsError, match=re.escape(message)):
        objects.decode("- {~: 1}\n")
    # regexp/syntax: Go >= 1.22 (sops's releases) reads `(?<name>` as a named group, so
    # `(?<=` is a bad name there; Go 1.19 refused `(?<` whatever followed.
    cases = [("(?<n>a)", "xa"), ("(?<=a)b", "ab"), ("(?<!a)>b", "b"), ("(?<1>x)(?<n>y)", "xy")]
    answers = go_oracles["scalars"].run(_regexp_case(p, s) for p, s in cases)
    upstream = [
        {"match": True},
        {"err": b"error parsing regexp: invalid named capture: `(?<=a)b`"},
        {"err": b"error parsing regexp: invalid named capture: `(?<!a)>`"},
        {"match": True},
    ]
    assert [regexp_ours(p, s) for p, s in cases] == upstream
    go_119 = {"err": b"error parsing regexp: invalid or unsupported Perl syntax: `(?<`"}
    assert [regexp_go(a) for a in answers] == (upstream if minor >= 22 else [go_119] * 4)


def test_case_count() -> None:
    """Runs last in this file: at least 2,000 generated cases went through Go."""
    if len(COUNTS) < len(GENERATED_PER_EMULATION):
        pytest.skip("run together with the differential tests above")
    generated = sum(g for _, g in COUNTS.values())
    fixed = sum(f for f, _ in COUNTS.values())
    summary = ", ".join(f"{name}: {f} fixed + {g} generated" for name, (f, g) in COUNTS.items())
    print(f"\ndifferential cases: {fixed} fixed, {generated} generated ({summary})")
    assert generated >= MIN_GENERATED


def _report(failures: list[tuple[Any, Any, Any]], limit: int = 15) -> str:
    lines = [f"{len(failures)} cases differ from Go:"]
    for case, ours, go in failures[:limit]:
        lines.append(f"  input: {case!r}\n    ours: {ours!r}\n    go:   {go!r}")
    return "\n".join(lines)

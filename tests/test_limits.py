"""Every parsing bound, through the real daemon: a hostile request is INVALID_ARGUMENT
naming what was too big and the limit, answered at once, and the daemon lives on."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest

from csiprovider import limits
from csiprovider.errors import MAX_MESSAGE_CHARS, InvalidArgument
from csiprovider.server import ServeConfig
from csiprovider.v1alpha1 import service_pb2 as pb
from testkit.daemon import running
from testkit.requests import attributes, mount_request

DIALECTS = {  # provider name -> extra attributes its dialect needs to reach `objects`
    "csiprovider": {},
    "vault": {"roleName": "app", "vaultAddress": "http://127.0.0.1:9"},
    "aws": {
        "region": "us-east-1",
        "csi.storage.k8s.io/serviceAccount.tokens": json.dumps(
            {"sts.amazonaws.com": {"token": "t", "expirationTimestamp": ""}}
        ),
    },
}
GOOD = "- {objectName: u, backend: file, path: db/username}"


@pytest.fixture
async def stubs(serve_config: Callable[..., ServeConfig]) -> AsyncIterator[dict[str, Any]]:
    async with running(serve_config(names=list(DIALECTS))) as found:
        yield found


async def refused(stub: Any, request: pb.MountRequest, *fragments: str) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Mount(request, timeout=10)
    details = info.value.details() or ""
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT, details
    for fragment in fragments:
        assert fragment in details, details
    assert len(details) <= MAX_MESSAGE_CHARS
    return details


def objects_request(name: str, objects: str) -> pb.MountRequest:
    return mount_request(objects, extra=DIALECTS[name])


@pytest.mark.parametrize("name", list(DIALECTS))
async def test_deep_nesting_is_refused_not_a_crash(stubs: dict[str, Any], name: str) -> None:
    # ~200 KB of '[' overflowed libyaml's recursive composer (SIGSEGV) in every dialect.
    await refused(
        stubs[name], objects_request(name, "[" * 300_000), "more than the limit of 262144"
    )
    await refused(
        stubs[name],
        objects_request(name, "[" * 50_000),
        f"nested deeper than {limits.MAX_YAML_DEPTH} levels",
    )
    reply = await stubs["csiprovider"].Mount(mount_request(GOOD))  # still serving
    assert [f.contents for f in reply.files] == [b"app_user"]


@pytest.mark.parametrize(
    "text",
    [
        "[" * 50_000,  # flow: libyaml 0.2.6 looks ahead past 1,000 levels before any event
        "a: " + "[" * 5000 + "]" * 5000,
        "- " * 2000 + "x",  # block sequences: libyaml refuses at 1,000 levels too
        "a:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, 60)),  # indentation
    ],
)
def test_nesting_is_refused_in_our_words_whatever_libyaml_refuses(text: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        limits.check_yaml(text, "parameter objects")
    assert f"nested deeper than {limits.MAX_YAML_DEPTH} levels" in info.value.message


def test_libyaml_own_nesting_limit_is_far_above_ours() -> None:
    """What the installed libyaml says of 2,000 levels, pinned in both forms it has had:
    libyaml <= 0.2.5 has no limit (the text merely ends early), 0.2.6 refuses past 1,000
    levels in its own words. A libyaml that words it otherwise, or refuses sooner, fails
    here: our 32 levels must stay the bound that answers (the test above)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    depth = 0
    with pytest.raises(yaml.YAMLError) as info:
        for event in yaml.parse("[" * 2000, Loader=loader):
            depth += isinstance(event, yaml.CollectionStartEvent)
    words = str(info.value)
    if "exceeded maximum nesting depth" in words:  # libyaml 0.2.6
        assert "column 1001" in words, words
    else:  # libyaml 0.2.5 and PyYAML's Python parser: every level, then the end
        assert (
            "did not find expected node content" in words or "expected the node content" in words
        ), words
        assert depth == 2000


def test_a_syntax_error_is_still_the_parser_s_to_word() -> None:
    """Walking on past a refusal changes nothing for text libyaml refuses for another
    reason: the dialect words the syntax error, as before."""
    limits.check_yaml("- {objectName: a, backend: file\n- b: [1, 2\n", "parameter objects")
    import yaml

    events = limits.yaml_events("- [1, 2\n- x: {")
    with pytest.raises(yaml.YAMLError):
        list(events)


@pytest.mark.parametrize("name", ["csiprovider", "aws"])
async def test_alias_bombs_are_refused_before_they_expand(stubs: dict[str, Any], name: str) -> None:
    lines = ["a0: &a0 [" + ", ".join(["xxxxxxxxxx"] * 10) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 8)]
    bomb = "- objectName: x\n  backend: vault\n  secretPath: p\n  secretArgs:\n" + "".join(
        f"    {line}\n" for line in lines
    )
    await refused(stubs[name], objects_request(name, bomb), "once aliases are expanded")


async def test_quadratic_expansion_of_long_scalars(stubs: dict[str, Any]) -> None:
    big = "x" * 100_000
    text = f"- objectName: a\n  backend: file\n  path: &p '{big}'\n" + "".join(
        f"- {{objectName: o{i}, backend: file, path: *p}}\n" for i in range(30)
    )
    await refused(
        stubs["csiprovider"],
        mount_request(text),
        f"more than {limits.MAX_YAML_EXPANDED_BYTES} bytes of text",
    )


async def test_too_many_objects(stubs: dict[str, Any]) -> None:
    text = "".join(
        f"- {{objectName: o{i}, backend: file, path: p}}\n" for i in range(limits.MAX_OBJECTS + 1)
    )
    await refused(
        stubs["csiprovider"], mount_request(text), f"more than {limits.MAX_OBJECTS} objects"
    )


@pytest.mark.parametrize("name", list(DIALECTS))
async def test_huge_number_literals(stubs: dict[str, Any], name: str) -> None:
    # Python refuses to convert integers of more than 4,300 digits (ValueError: INTERNAL).
    text = f"- {{objectName: x, backend: file, path: p, filePermission: {'7' * 5000}}}"
    await refused(stubs[name], objects_request(name, text), "a number literal of 5000")


async def test_native_dialect_refuses_duplicate_keys(stubs: dict[str, Any]) -> None:
    text = "- objectName: a\n  backend: file\n  path: db/username\n  path: db/password\n"
    await refused(
        stubs["csiprovider"], mount_request(text), "at line 4: mapping key 'path' is repeated"
    )


async def test_request_envelope_bounds(stubs: dict[str, Any]) -> None:
    stub = stubs["csiprovider"]
    base = attributes(GOOD)
    huge = json.dumps({**base, "padding": "x" * limits.MAX_ATTRIBUTES_BYTES})
    await refused(
        stub,
        mount_request(raw_attributes=huge),
        "MountRequest.attributes is",
        f"limit of {limits.MAX_ATTRIBUTES_BYTES}",
    )
    deep = '{"a":' * 5000 + "1" + "}" * 5000
    deeper = f"nested deeper than {limits.MAX_JSON_DEPTH} levels"
    await refused(stub, mount_request(raw_attributes=deep), deeper)
    request = mount_request(GOOD)
    request.secrets = deep
    await refused(stub, request, f"failed to parse secrets as JSON: {deeper}")
    tokens = json.dumps({**base, "csi.storage.k8s.io/serviceAccount.tokens": deep})
    await refused(stub, mount_request(raw_attributes=tokens), deeper)
    # Brackets inside strings do not nest: a value full of them is no deeper than 1.
    request = mount_request(GOOD)
    request.secrets = json.dumps({"k": "[{" * 5000})
    assert (await stub.Mount(request, timeout=10)).files
    surrogate = json.dumps(base)[:-1] + ', "x": "\\ud800"}'
    await refused(stub, mount_request(raw_attributes=surrogate), "not valid UTF-8")
    lone_key = json.dumps({**base, "csi.storage.k8s.io/pod.namespace": "PLACEHOLDER"})
    await refused(
        stub,
        mount_request(raw_attributes=lone_key.replace("PLACEHOLDER", "\\udcff")),
        "not valid UTF-8",
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("csi.storage.k8s.io/pod.namespace", ".."),
        ("csi.storage.k8s.io/pod.namespace", "/etc"),
        ("csi.storage.k8s.io/pod.namespace", "de\u0000fault"),
        ("csi.storage.k8s.io/pod.namespace", "Default"),
        ("csi.storage.k8s.io/pod.name", "../web"),
        ("csi.storage.k8s.io/pod.uid", "uid/../x"),
        ("csi.storage.k8s.io/serviceAccount.name", "a b"),
    ],
)
async def test_identity_attributes_must_be_kubernetes_names(
    stubs: dict[str, Any], key: str, value: str
) -> None:
    details = await refused(
        stubs["csiprovider"],
        mount_request(GOOD, extra={key: value}),
        f"invalid {key}",
        "as Kubernetes names it",
    )
    assert "\u0000" not in details


def test_error_messages_are_capped() -> None:
    error = InvalidArgument("x" * 100_000)
    assert len(error.message) == MAX_MESSAGE_CHARS and error.message.endswith("(truncated)")
    assert len(limits.quote("y" * 10_000)) <= limits.MAX_QUOTED_CHARS + 2

"""Templates: files rendered from other objects, sandboxed and bounded."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import grpc
import pytest

from csiprovider.errors import InvalidArgument, MountError, NotFound
from csiprovider.native import templates
from testkit.requests import mount_request


@pytest.fixture
def inputs(file_root: Path) -> Path:
    (file_root / "default" / "db" / "host").write_text("db.internal")
    (file_root / "default" / "conf.json").write_text(json.dumps({"port": 5432}))
    return file_root


PGPASS = """
- {objectName: host, backend: file, path: db/host, render: false}
- {objectName: user, backend: file, path: db/username, render: false}
- {objectName: pass, backend: file, path: db/password, render: false}
- {objectName: conf, backend: file, path: conf.json, render: false}
- objectName: .pgpass
  filePermission: "0600"
  template: "{{ objects['host'] }}:{{ (objects['conf'] | fromjson).port }}:*:{{ objects['user'] }}:{{ objects['pass'] }}\\n"
- objectName: jdbc-url
  template: "jdbc:postgresql://{{ objects['host'] }}/app"
"""


async def test_template_renders_from_inputs_that_are_not_written(stub: Any, inputs: Path) -> None:
    reply = await stub.Mount(mount_request(PGPASS))
    got = {f.path: (f.contents, f.mode) for f in reply.files}
    assert got == {
        ".pgpass": (b"db.internal:5432:*:app_user:pw-0123456789\n", 0o600),
        "jdbc-url": (b"jdbc:postgresql://db.internal/app", 0o644),
    }
    assert [v.id for v in reply.object_version] == [".pgpass", "jdbc-url"]


async def test_version_changes_exactly_when_a_read_input_changes(stub: Any, inputs: Path) -> None:
    first = {v.id: v.version for v in (await stub.Mount(mount_request(PGPASS))).object_version}
    (inputs / "default" / "db" / "password").write_text("rotated")
    second = {v.id: v.version for v in (await stub.Mount(mount_request(PGPASS))).object_version}
    assert first[".pgpass"] != second[".pgpass"]
    assert first["jdbc-url"] == second["jdbc-url"]  # it does not read the password


@pytest.mark.parametrize(
    ("template", "message", "code"),
    [
        ("{{ objects.__class__.__mro__ }}", "sandbox", "INVALID_ARGUMENT"),
        ("{{ ''.__class__.__subclasses__() }}", "sandbox", "INVALID_ARGUMENT"),
        (
            "{{ objects['nope'] }}",
            "template refers to something undefined (input 'nope')",
            "NOT_FOUND",
        ),
        (
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "template took longer than",
            "INVALID_ARGUMENT",
        ),
        (
            "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}",
            "template output exceeds",
            "INVALID_ARGUMENT",
        ),
        (
            "{% include '/etc/passwd' %}",
            "include, import and extends are not supported",
            "INVALID_ARGUMENT",
        ),
        ("{{ 'x' * 10**9 }}", "value too large", "INVALID_ARGUMENT"),
        ("{{ 9 ** (9 ** 9) }}", "number too large", "INVALID_ARGUMENT"),
        ("{{ 1 / 0 }}", "division by zero", "INVALID_ARGUMENT"),
        (
            "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
            "recursion or nesting too deep",
            "INVALID_ARGUMENT",
        ),
    ],
)
async def test_hostile_templates_are_refused_safely(
    stub: Any, inputs: Path, template: str, message: str, code: str
) -> None:
    """Through the daemon, with its real limits and clock: each template is refused by the
    bound its message names (the loop by the wall-clock limit, which only a refusal can
    report), never by the daemon's Mount deadline (DEADLINE_EXCEEDED), and the daemon
    serves on. How long each refusal takes is not asserted: that is the machine's speed."""
    objects = [
        {"objectName": "host", "backend": "file", "path": "db/host"},
        {"objectName": "evil", "template": template},
    ]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Mount(mount_request(objects), timeout=GUARD)
    assert message in (info.value.details() or "")
    assert info.value.code() is getattr(grpc.StatusCode, code)
    assert "root:" not in (info.value.details() or "")
    # The daemon still serves.
    reply = await stub.Mount(mount_request(objects[:1]))
    assert reply.files[0].contents == b"db.internal"


async def test_template_syntax_error_is_invalid_argument(stub: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Mount(mount_request([{"objectName": "t", "template": "{{ oops"}]))
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "objects[0] (objectName 't'): template syntax error at line 1" in (
        info.value.details() or ""
    )


# templates.render itself: every bound, every error, no value in any message -----------
#
# Each bound is checked on its own. The size and memory bounds are checked with the time
# limit lifted to GUARD seconds: with the real second a busy machine could trip the clock
# before the bound under test (a 40000-field format takes a while to check), and the
# test would be asserting which of two limits wins a race. GUARD only stops a render that
# a broken bound let run on, which then fails with the time limit's message. The time
# limit is checked on a clock the test drives (Ticking), so it takes milliseconds and
# trips at the same point on any machine.

GUARD = 60.0  # seconds: a failure guard, never the thing asserted
LABEL = "objects[9] (objectName 'evil')"
SECRET = "_s3cr3t{Value}%d-ü42"  # starts with '_', has braces and '%': many ways to fail
INPUTS = {
    "user": b"app_user",
    "pass": SECRET.encode(),
    "conf": b'{"port": 5432, "l": [1, 2]}',
    "deep": b"[" * 5000 + b"]" * 5000,
    "big": b"x" * (2 * templates.MAX_VALUE),
}


def render(source: str) -> str:
    """`source` rendered from INPUTS, the time limit lifted (see GUARD)."""
    return templates.render(source, templates.Inputs(INPUTS), LABEL, seconds=GUARD).decode()


def refusal(source: str) -> tuple[MountError, int]:
    """The error of rendering `source` (the time limit lifted) and tracemalloc's peak."""
    tracemalloc.start()
    try:
        with pytest.raises(MountError) as info:
            render(source)
        return info.value, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


class Ticking:
    """A clock that moves on by `tick` seconds each time it is read. The deadline's trace
    hook reads it at every traced line, so the render's second passes after a fixed number
    of lines (100000 by default), whatever the machine's speed."""

    def __init__(self, tick: float = 1e-5) -> None:
        self.tick = tick
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.reads * self.tick


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("{{ 'x' * 10**9 }}", "value too large"),
        ("{{ 10**9 * 'x' }}", "value too large"),
        ("{{ 'x' * 10**6 * 10**3 }}", "value too large"),
        ("{{ [1] * 10**9 }}", "value too large"),
        ("{{ (1, 2) * 10**9 }}", "value too large"),
        ("{{ 'x'.encode() * 10**9 }}", "value too large"),
        ("{{ '%0999999999d' % 1 }}", "value too large"),
        ("{{ '%.999999999f' % 1.0 }}", "value too large"),
        ("{{ '%*d' % (10**9, 1) }}", "value too large"),
        ("{{ '%(a)999999999s' % {'a': 1} }}", "value too large"),
        ("{{ ('%(a)s' * 2000) % {'a': 'x' * 1000} }}", "value too large"),
        ("{{ '%0999999999d'|format(1) }}", "value too large"),
        ("{{ '{:>999999999}'.format(1) }}", "value too large"),
        ("{{ '{:{}}'.format('x', 10**9) }}", "value too large"),
        ("{{ '{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}'.format('x' * 100000) }}", "value too large"),
        ("{{ ('{0[conf]}' * 40000).format(objects) }}", "value too large"),
        ("{{ ('%(conf)s' * 40000) % objects }}", "value too large"),
        ("{{ 'x'.ljust(10**9) }}", "value too large"),
        ("{{ 'x'.rjust(10**9) }}", "value too large"),
        ("{{ 'x'.center(10**9) }}", "value too large"),
        ("{{ 'x'.zfill(10**9) }}", "value too large"),
        ("{{ 'x\t'.expandtabs(10**9) }}", "value too large"),
        ("{{ ('x' * 100000).replace('', 'y' * 1000) }}", "value too large"),
        ("{{ 'abc'.translate({97: 'y' * 10**6, 98: 'z' * 10**6}) }}", "value too large"),
        ("{{ ','.join(['x'] * 10**8) }}", "value too large"),
        ("{{ ('y' * 1000).join(['x'] * 2000) }}", "value too large"),
        ("{{ ('x,' * 500000).split(',') }}", "value too large"),
        ("{{ (1).to_bytes(10**9, 'big') }}", "value too large"),
        ("{{ {}.fromkeys(range(100000)) }}", "value too large"),
        ("{{ range(10**9) }}", "number too large"),
        ("{{ range(100000)|list }}", "value too large"),
        ("{{ ('x' * 1000000)|list }}", "value too large"),
        ("{{ [1]|batch(10**9, 0)|list }}", "value too large"),
        ("{{ [1]|slice(10**9)|list }}", "value too large"),
        ("{{ 'x'|center(10**9) }}", "value too large"),
        ("{{ 'a\nb\nc'|indent(10**9) }}", "value too large"),
        ("{{ 'a b c d'|wordwrap(1, wrapstring='y' * 10**6) }}", "value too large"),
        ("{{ ('x' * 100000)|replace('', 'y' * 1000) }}", "value too large"),
        ("{{ (['x' * 1000] * 2000)|join }}", "value too large"),
        ("{{ [[1] * 100000, [1] * 100000] }}", "value too large"),
        ("{{ ['x' * 1048000, 'x' * 1000] }}", "value too large"),
        ("{{ ('x' * 1048576) ~ 'x' }}", "value too large"),
        ("{{ [['x' * 600000], ['x' * 600000]]|sum(start=[]) }}", "value too large"),
        ("{{ [[1] * 100000] * 100|sum(start=[]) }}", "value too large"),
        ("{{ objects['big'] }}", "value too large"),
        ("{{ objects['big'][:] }}", "value too large"),
        ("{{ objects['big']|upper }}", "value too large"),
        ("{{ objects['big'].upper() }}", "value too large"),
        ("{{ 10**(10**10) }}", "number too large"),
        ("{{ 9 ** (9 ** 9) }}", "number too large"),
        (
            "{{ (10**1000) * (10**1000) * (10**1000) * (10**1000) * (10**1000) }}",
            "number too large",
        ),
        ("{{ ('f' * 100000)|int(base=16) }}", "number too large"),
        ("{{ 10|round(-10**9) }}", "number too large"),
        ("{{ 1.5|round(10**9, 'floor') }}", "number too large"),
        ("{{ 2.0 ** 10000 }}", "number too large"),
        ("{{ '%c' % 10**10 }}", "number too large"),
        ("{{ ('1' * 5000)|fromjson }}", "invalid value"),
        ("{{ objects['deep']|fromjson }}", "recursion or nesting too deep"),
    ],
)
def test_explosive_operations_are_refused_before_they_are_built(source: str, kind: str) -> None:
    error, peak = refusal(source)
    assert isinstance(error, InvalidArgument)
    assert kind in error.message
    assert error.message.startswith(f"{LABEL}: template ")
    assert peak < 16 * 1024 * 1024  # nothing near the size asked for was ever allocated


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        # doubling by `~` and `+`, in straight lines and in loops
        (
            "{% set s = 'x' * 1000 %}" + "{% set s = s ~ s %}" * 20 + "{{ s|length }}",
            "value too large",
        ),
        (
            "{% set s = ['x' * 1000] %}" + "{% set s = s + s %}" * 20 + "{{ s|length }}",
            "value too large",
        ),
        (
            "{% set ns = namespace(s='') %}{% for i in range(100000) %}"
            "{% set ns.s = ns.s ~ ('x' * 100) %}{% endfor %}",
            "in all",
        ),
        (
            "{% set ns = namespace(l=[]) %}{% for i in range(100000) %}"
            "{% set ns.l = ns.l + ['x' * 1000 ~ i] %}{% endfor %}",
            "in all",
        ),
        # nested displays: exponentially large when printed, compared or hashed
        ("{% set x = [1] %}" + "{% set x = [x, x] %}" * 60 + "{{ x == x }}", "value too large"),
        ("{% set t = (1,) %}" + "{% set t = (t, t) %}" * 60 + "{{ {t: 1} }}", "value too large"),
        (
            "{% set ns = namespace(x=[]) %}{% for i in range(100000) %}"
            "{% set ns.x = [ns.x, [1, 2, 3, 4, 5, 6, 7, 8]] %}{% endfor %}",
            "nested too deeply",
        ),
        # values held by recursion (1 MiB of text each time: ASCII, then 4 bytes a character),
        # output piled up in macros and blocks
        (
            "{% macro f(n) %}{% set s = 'x' * 1000000 %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
            "in all",
        ),
        (
            "{% macro f(n) %}{% set s = '\U0001f600' * 262144 %}{{ f(n + 1) }}{{ s|length }}"
            "{% endmacro %}{{ f(0) }}",
            "in all",
        ),
        (
            "{% macro f(s) %}{% for i in range(100000) %}{{ s }}{% endfor %}{% endmacro %}"
            "{{ f('x' * 1000000)|length }}",
            "in all",
        ),
        (
            "{% macro f() %}{% for i in range(2000) %}"
            + "x" * 1000
            + "{% endfor %}{% endmacro %}{{ f()|length }}",
            "value too large",
        ),
        (
            "{% set b %}{% for i in range(2000) %}" + "x" * 1000 + "{% endfor %}{% endset %}",
            "value too large",
        ),
        (
            "{% filter upper %}{% for i in range(2000) %}"
            + "x" * 1000
            + "{% endfor %}{% endfilter %}",
            "value too large",
        ),
        (
            "{% macro f(s) %}{% autoescape true %}{% for i in range(100000) %}{{ s }}{% endfor %}"
            "{% endautoescape %}{% endmacro %}{{ f('\"' * 300000)|length }}",
            "value too large",
        ),
    ],
)
def test_a_render_makes_a_bounded_amount_of_values(source: str, kind: str) -> None:
    error, peak = refusal(source)
    assert kind in error.message
    assert peak < 4 * templates.BUDGET + 8 * templates.MAX_VALUE  # the module docstring's


def test_the_time_limit_holds_for_loops_compiling_and_parsing() -> None:
    """On a driven clock (one second is 100000 traced lines), each of these, which would
    run for minutes (or into a RecursionError), is stopped by the time limit, and at once:
    before the clock reads 2 s. The same clock lets a short template render and parse, so
    the limit is not simply tripped by Jinja's own start."""
    inputs = templates.Inputs(INPUTS)
    short = Ticking()
    assert templates.render("{{ objects['user'] }}", inputs, LABEL, clock=short) == b"app_user"
    templates.check("{{ objects['user'] }}", LABEL, clock=short)
    for source, where in [
        (
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            " at line 1",  # in the template's own loop
        ),
        (
            "{% set ns = namespace(n=0) %}{% for i in range(100000) %}"
            "{% for j in range(100000) %}{% set ns.n = ns.n + 1 %}{% endfor %}"
            "{% endfor %}",
            " at line 1",
        ),
        ("{{ 1" + " + 1" * 50000 + " }}", ""),  # compiling: no template line runs yet
    ]:
        clock = Ticking()
        with pytest.raises(InvalidArgument) as info:
            templates.render(source, inputs, LABEL, clock=clock)
        assert info.value.message == f"{LABEL}: template took longer than 1.0s to render{where}"
        assert templates.RENDER_SECONDS < clock() < 2
    clock = Ticking()
    with pytest.raises(InvalidArgument, match=r"took longer than 1\.0s to parse"):
        templates.check("{{ " + "a." * 50000 + "b }}", LABEL, clock=clock)
    assert templates.RENDER_SECONDS < clock() < 2
    for source in ["{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}", "{% if 1 %}" * 3000]:
        with pytest.raises(InvalidArgument, match="template nested too deeply"):
            templates.check(source, LABEL)


@pytest.mark.parametrize(
    ("source", "error", "kind"),
    [
        ("{{ 1 / 0 }}", InvalidArgument, "failed at line 1: division by zero"),
        ("{{ 1 // 0 }}", InvalidArgument, "failed at line 1: division by zero"),
        ("{{ 1 % 0 }}", InvalidArgument, "failed at line 1: division by zero"),
        ("{{ 4 is divisibleby 0 }}", InvalidArgument, "failed at line 1: division by zero"),
        (
            "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
            InvalidArgument,
            "recursion or nesting too deep",
        ),
        (
            "{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}",
            InvalidArgument,
            "recursion or nesting too deep",
        ),
        ("{{ 'a' * 3e8 }}", InvalidArgument, "wrong type of value or argument"),
        ("{{ objects['user'] + 1 }}", InvalidArgument, "wrong type of value or argument"),
        ("{{ objects['user'] | fromjson }}", InvalidArgument, "not valid JSON"),
        ("{{ 'abc'.index('z') }}", InvalidArgument, "invalid value"),
        ("{{ 'x'.encode('no-such-codec') }}", InvalidArgument, "no such element"),
        ("{{ 'é'.encode('ascii') }}", InvalidArgument, "cannot be encoded or decoded"),
        ("{{ 1e308 * 10 ** 400 }}", InvalidArgument, "number too large"),
        (
            "{{ objects['conf'] | fromjson | tojson | fromjson | attr('x') }}",
            InvalidArgument,
            "refers to something undefined (attribute or element 'x')",
        ),
        ("{{ nope }}", InvalidArgument, "refers to something undefined (variable 'nope')"),
        ("{{ objects['missing'] }}", NotFound, "refers to something undefined (input 'missing')"),
        ("{{ objects.missing }}", NotFound, "refers to something undefined (input 'missing')"),
        ("{{ ''.__class__ }}", InvalidArgument, "refused by the sandbox at line 1"),
        ("{% include 'x' %}", InvalidArgument, "include, import and extends are not supported"),
        ("{% import 'x' as y %}", InvalidArgument, "include, import and extends are not supported"),
        ("{% extends 'x' %}", InvalidArgument, "include, import and extends are not supported"),
        ("{{ lipsum() }}", InvalidArgument, "undefined (variable 'lipsum')"),
        ("{{ 'x'|urlize }}", InvalidArgument, "syntax error at line 1: No filter named 'urlize'"),
    ],
)
def test_every_failure_is_a_mount_error_saying_what_and_where(
    source: str, error: type[MountError], kind: str
) -> None:
    with pytest.raises(MountError) as info:
        render(source)
    assert type(info.value) is error
    assert kind in info.value.message
    assert info.value.message.startswith(f"{LABEL}: template ")


def test_errors_name_the_template_line() -> None:
    source = "{% macro m(x) %}\n  {{ x / 0 }}\n{% endmacro %}\n{{ objects['user'] }}\n{{ m(1) }}\n"
    with pytest.raises(InvalidArgument, match="failed at line 2: division by zero"):
        render(source)
    with pytest.raises(InvalidArgument, match="refused at line 3: value too large"):
        render("a\nb\n{{ 'x' * 10**9 }}")
    with pytest.raises(InvalidArgument, match=r"took longer than 1\.0s to render at line 2"):
        templates.render(
            "{% for i in range(100000) %}\n{% for j in range(100000) %}{% endfor %}{% endfor %}",
            templates.Inputs(INPUTS),
            LABEL,
            clock=Ticking(),
        )


SECRET_TOUCHING = [
    "{{ objects['user'][objects['pass']] }}",
    "{{ objects['user'] | attr(objects['pass']) }}",
    "{{ objects['user'] | attr(objects['pass'][1:]) }}",
    "{{ objects[objects['pass']] }}",
    "{{ objects[objects['pass'][1:]] }}",
    "{{ objects['pass'] % () }}",
    "{{ objects['pass'] % 'x' }}",
    "{{ objects['pass'].format(1) }}",
    "{{ objects['pass'].format_map({}) }}",
    "{{ ('{0.' ~ objects['pass'] ~ '}').format(1) }}",
    "{{ ('%(' ~ objects['pass'] ~ ')s') % {} }}",
    "{{ objects['pass'] | fromjson }}",
    "{{ objects['pass'] | tojson | fromjson | fromjson }}",
    "{{ objects['pass'] | int + 'x' }}",
    "{{ objects['pass'] | float / 0 }}",
    "{{ int(objects['pass']) }}",
    "{{ objects['pass'] + 1 }}",
    "{{ objects['pass'] - 1 }}",
    "{{ objects['pass'] ** 2 }}",
    "{{ -objects['pass'] }}",
    "{{ objects['pass'] * objects['pass'] }}",
    "{{ objects['pass'] * 10**9 }}",
    "{{ objects['pass'].nope }}",
    "{{ objects['pass'].nope() }}",
    "{{ objects['pass'][objects['pass']] }}",
    "{{ objects['pass'][10**6] }}",
    "{{ {'a': 1}[objects['pass']] }}",
    "{{ [1, 2][objects['pass']] }}",
    "{{ (objects['conf'] | fromjson)[objects['pass']] }}",
    "{{ {objects['pass']: 1}[objects['user']] }}",
    "{{ dict(a=objects['pass']).b.c }}",
    "{{ range(objects['pass']) }}",
    "{{ objects['pass'] | round }}",
    "{{ objects['pass'] | abs }}",
    "{{ objects['pass'] | filesizeformat }}",
    "{{ objects['pass'] | slice(0) | list }}",
    "{{ objects['pass'] | wordwrap(objects['pass']) }}",
    "{{ objects['pass'] | center(objects['pass']) }}",
    "{{ objects['pass'].split(objects['pass'] ~ 'x', objects['pass']) }}",
    "{{ objects['pass'].index('zzz') }}",
    "{{ objects['pass'].encode(objects['pass']) }}",
    "{{ objects['user'] is divisibleby objects['pass'] }}",
    "{{ objects['user'] | map(objects['pass']) | list }}",
    "{{ objects['user'] | select(objects['pass']) | list }}",
    "{{ [objects['user']] | map(attribute=objects['pass']) | join }}",
    "{{ [objects['user'], 'b'] | sort(attribute=objects['pass']) | join }}",
    "{% set ns = namespace() %}{% set ns.x = objects['pass'] %}{{ ns.x.y.z }}",
    "{{ cycler(objects['pass']).next().y }}",
    "{{ objects['pass'] ~ nosuchname }}",
    "{{ lookup[objects['pass']] }}",
    "{% for c in objects['pass'] %}{{ c / 0 }}{% endfor %}",
    "{% macro m(x) %}{{ x.y }}{% endmacro %}{{ m(objects['pass']) }}",
    "{% macro m() %}{{ caller() }}{% endmacro %}{% call m() %}{{ objects['pass'] / 0 }}"
    "{% endcall %}",
    "{% set x %}{{ objects['pass'] + 1 }}{% endset %}",
    "{% filter upper %}{{ objects['pass'].nope() }}{% endfilter %}",
    "{{ objects['pass'] | indent(objects['pass'] * 1000000) }}",
]


@pytest.mark.parametrize("source", SECRET_TOUCHING)
def test_no_error_message_contains_a_value(source: str) -> None:
    with pytest.raises(MountError) as info:
        render(source)
    message = info.value.message
    for part in (SECRET, SECRET[1:], "s3cr3t", "Value", "ü42", "\\xfc42", "app_user", "5432"):
        assert part not in message
    assert message.startswith(f"{LABEL}: template ")
    assert len(message) <= 1024


def test_a_name_is_quoted_only_when_the_template_spells_it_out() -> None:
    inputs = dict(INPUTS, pass2=b"missing")  # a value that is also a name in the source
    with pytest.raises(NotFound, match=r"\(input 'missing'\)"):
        templates.render(
            "{{ objects[objects['pass2']] }}{{ 'missing' }}", templates.Inputs(inputs), LABEL
        )
    with pytest.raises(NotFound) as info:
        templates.render("{{ objects[objects['pass2']] }}", templates.Inputs(inputs), LABEL)
    assert "missing" not in info.value.message
    assert "(input)" in info.value.message


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ '-' * 40 }}", "-" * 40),
        ("{{ 3 * 'ab' }}", "ababab"),
        ("{{ [0] * 3 }}", "[0, 0, 0]"),
        ("{{ '%05d' % 42 }}", "00042"),
        ("{{ '%s:%s' % (objects['user'], 5432) }}", "app_user:5432"),
        ("{{ '%(u)s@%(h)s' % {'u': objects['user'], 'h': 'db'} }}", "app_user@db"),
        ("{{ '%.2f' % 3.14159 }}", "3.14"),
        ("{{ '%-6s|' % 'ab' }}", "ab    |"),
        ("{{ '%s'|format(objects['user']) }}", "app_user"),
        ("{{ '{}:{}'.format(objects['user'], 5432) }}", "app_user:5432"),
        ("{{ '{u}/{p:>6}'.format(u='a', p='b') }}", "a/     b"),
        ("{{ '{0[port]}'.format(objects['conf'] | fromjson) }}", "5432"),
        ("{{ '{:,}'.format(1234567) }}", "1,234,567"),
        ("{{ ','.join(['a', 'b', 'c']) }}", "a,b,c"),
        ("{{ ['a', 'b'] | join('-') }}", "a-b"),
        ("{{ range(10) | list }}", str(list(range(10)))),
        ("{{ range(3) | map('string') | join(',') }}", "0,1,2"),
        ("{{ [1, 2, 3] | sum }}", "6"),
        ("{{ [[1], [2]] | sum(start=[]) }}", "[1, 2]"),
        ("{{ [{'n': 2}, {'n': 3}] | sum(attribute='n') }}", "5"),
        (
            "{{ 2 ** 10 }}|{{ 2 ** 4000 > 0 }}|{{ 7 // 2 }}|{{ 7 % 2 }}|{{ 7 / 2 }}|{{ 1 - 3 }}",
            "1024|True|3|1|3.5|-2",
        ),
        ("{{ objects['user'] ~ ':' ~ 5432 }}", "app_user:5432"),
        ("{{ objects['user'][:3] }}{{ objects['user'][::-1] }}", "appresu_ppa"),
        ("{{ objects['user'].upper().center(12, '*') }}", "**APP_USER**"),
        ("{{ objects['user'].replace('_', '-').split('-') }}", "['app', 'user']"),
        (
            "{{ 'a\nb'.splitlines() }}|{{ 'a\tb'.expandtabs(2) }}|{{ '7'.zfill(3) }}",
            "['a', 'b']|a b|007",
        ),
        ("{{ 'a\nb' | indent(2, first=true) }}", "  a\n  b"),
        ("{{ 'hello world' | wordwrap(5) }}", "hello\nworld"),
        ("{{ 'abc' | center(7) }}", "  abc  "),
        ("{{ 'hello' | replace('l', 'L') | truncate(9) }}", "heLLo"),
        ("{{ [3, 1, 2] | sort | list }}{{ [1, 1, 2] | unique | list }}", "[1, 2, 3][1, 2]"),
        (
            "{{ [1, 2, 3, 4] | batch(2) | list }}{{ [1, 2, 3] | slice(2) | list }}",
            "[[1, 2], [3, 4]][[1, 2], [3]]",
        ),
        (
            "{{ (objects['conf'] | fromjson).port }}|{{ (objects['conf'] | fromjson) | tojson }}",
            '5432|{"port":5432,"l":[1,2]}',
        ),
        ("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}", "a=1;b=2;"),
        (
            "{% set ns = namespace(n=0) %}{% for i in range(100) %}{% set ns.n = ns.n + i %}"
            "{% endfor %}{{ ns.n }}",
            "4950",
        ),
        (
            "{% macro m(x) %}<{{ x }}>{% endmacro %}{{ m(1) }}{% set b %}x{{ 2 }}{% endset %}{{ b }}"
            "{% filter upper %}y{% endfilter %}",
            "<1>x2Y",
        ),
        (
            "{% autoescape true %}{{ '<a>' }}{{ '<' ~ 'b>' }}{% endautoescape %}{{ '<c>' }}",
            "&lt;a&gt;&lt;b&gt;<c>",
        ),
        ("{{ (1, 'a') }}{{ {'k': [1, 2]} }}{{ none }}", "(1, 'a'){'k': [1, 2]}None"),
        (
            "{{ 4.5 | round }}|{{ 4.55 | round(1, 'floor') }}|{{ 1000 | filesizeformat }}",
            "4.0|4.5|1.0 kB",
        ),
        ("{{ 'a b  c' | wordcount }}", "3"),
    ],
)
def test_legitimate_templates_still_render(source: str, expected: str) -> None:
    assert render(source) == expected


def test_a_template_may_print_up_to_the_output_limit() -> None:
    assert len(render("{{ 'x' * " + str(templates.MAX_OUTPUT) + " }}")) == templates.MAX_OUTPUT
    assert len(render("{% for i in range(1024) %}{{ 'x' * 1024 }}{% endfor %}")) == (
        templates.MAX_OUTPUT
    )
    with pytest.raises(InvalidArgument, match="output exceeds 1048576 bytes"):
        render("{{ 'x' * 1024 }}{{ 'x' * " + str(templates.MAX_OUTPUT) + " }}")

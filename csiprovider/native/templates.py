"""Templates: files rendered from other objects of the same SecretProviderClass (a
`.pgpass`, a `config.yaml`, a JDBC URL).

Jinja2's immutable sandbox with StrictUndefined and no autoescape: no loader (no
filesystem; include, import and extends are refused), no network, no attribute access to
internals, a missing input is an error rather than an empty string. The `lipsum` global
and the HTML `urlize` filter are removed; `fromjson` and `tojson` are added.

The daemon serves every pod of the node, so one render is bounded whatever the template:

- Size. Every value a template makes - by an operator, `~`, a list/tuple/dict display, a
  slice, a call, a filter, an output expression or a block - has a size of at most
  MAX_VALUE: for a string its length, for an int its digits (and at most MAX_INT_BITS
  bits), for a container its elements' sizes plus 8 each, a shared element counted every
  time it appears (the size of its printed form), nested at most MAX_DEPTH deep. Where
  one step could multiply its operands (`*`, `**`, `+`, `%` and format widths, `~`,
  center/ljust/rjust/zfill/expandtabs/replace/join/split/translate/encode/to_bytes, the
  filters center/format/indent/join/replace/wordwrap/batch/slice/round/list/sort/...),
  the size is predicted from the operands and refused before anything is built.
- Memory. The sizes of all the values one render makes add up to at most BUDGET. A unit
  of size is at most 4 bytes of text (one character), ~10 for the tiniest container
  elements, so a render holds at most ~32 MiB of text beyond its inputs (measured: 8 MiB
  for ASCII, 31 MiB for emoji), ~80 MiB in the worst case; a single step may briefly need
  up to ~30 MiB more (tojson's \\u escapes of MAX_VALUE emoji, urlencode, a repr).
- Time. RENDER_SECONDS of wall time to parse (check) and again to compile and render,
  checked by a trace hook between Python lines (this module's own, bounded, steps are not
  traced line by line); the bounds above keep every single step (one C call) short, and
  `range` has at most 100000 items (the sandbox's MAX_RANGE). `check` and `render` take
  the limit and the clock as parameters (`seconds=`, `clock=`; the daemon uses the
  defaults), so that a test can check each bound on its own: the sizes without the
  clock's race, the time limit on a clock it drives.
- Output. MAX_OUTPUT bytes.

Every failure is InvalidArgument (NotFound for an input that is not there) naming the
object, the template line and what went wrong, never a value: an undefined name is
quoted only when the template spells it out.
"""

from __future__ import annotations

import functools
import json
import math
import operator
import os
import re
import string
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from types import FrameType
from typing import Any, NoReturn, TypeVar, cast

import jinja2
import jinja2.nodes
import jinja2.sandbox
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.filters import make_attrgetter
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, markup_join, str_join
from jinja2.utils import Namespace, missing
from markupsafe import escape

from csiprovider.errors import InvalidArgument, MountError, NotFound
from csiprovider.limits import quote

RENDER_SECONDS = 1.0
MAX_OUTPUT = 1024 * 1024  # bytes of one rendered file
MAX_VALUE = MAX_OUTPUT  # size of any one value a template makes
BUDGET = 8 * MAX_OUTPUT  # sizes of all the values one render makes, added up
MAX_INT_BITS = 4096  # any integer a template makes (4096 bits: 1234 digits)
MAX_DEPTH = 64  # lists and dicts nested in each other
MAX_ROUND_DIGITS = 1000  # round(x, n): 10**n is computed

_ITEM = 8  # size of a container element, besides the element's own
_SCALAR = 32  # size of a float, None, or an object printed by its type (a range...)
_FLOAT_TEXT = 320  # '%f' of a large float (309 digits, a sign, decimals)
_CALL_EXTRAS = ("_loop_vars", "_block_vars")  # passed by Jinja, not by the template
_LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"  # what str.splitlines splits on
_PERCENT_WIDTH = re.compile(r"[%).][#0 +\-]*(\d+)")  # '%' [key] flags width, '.' precision
_NUMBER = re.compile(r"\d+")
_WORD = re.compile(r"\w+")
_ITEMS_VIEW: type = type({}.items())
_CONTAINERS: tuple[type, ...] = (
    list,
    tuple,
    set,
    frozenset,
    dict,
    _ITEMS_VIEW,
    type({}.keys()),
    type({}.values()),
)
_WALKED = (*_CONTAINERS, Namespace)
_SEQUENCES = (str, bytes, list, tuple)  # what `*` repeats and `+` joins

_T = TypeVar("_T")
_local = threading.local()  # this thread's render: `spent` size, last `undefined`


class _Timeout(BaseException):
    """Raised by the trace hook; a BaseException so that no `except Exception` stops it."""


class _Refused(Exception):
    """An operation that would break a bound, refused before its result is made."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def _too_large() -> _Refused:
    return _Refused(f"value too large (over {MAX_VALUE} characters)")


class Inputs(Mapping[str, str]):
    """The objects a template may read, recording which ones it did read."""

    def __init__(self, values: Mapping[str, bytes]) -> None:
        self._values = values
        self._text: dict[str, str] = {}  # decoded once: a loop re-reading makes no copies
        self.used: set[str] = set()

    def __getitem__(self, key: str) -> str:
        if key not in self._values:
            raise KeyError(key)
        self.used.add(key)
        if key not in self._text:
            self._text[key] = self._values[key].decode("utf-8", errors="replace")
        return self._text[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def longest(self) -> int:
        """An upper bound of the size of any input, without reading one."""
        return max(map(len, self._values.values()), default=0)


# Sizes and the budget -------------------------------------------------------------------


def _size(value: object) -> int:
    """The size of `value` (see the module docstring); refuses one over MAX_VALUE."""
    if isinstance(value, str | bytes):
        size = len(value)
    elif isinstance(value, _WALKED):
        size = _walk(value, 0, {})
    elif isinstance(value, int) and not isinstance(value, bool):
        return _int_size(value)
    else:
        return _SCALAR
    if size > MAX_VALUE:
        raise _too_large()
    return size


def _int_size(value: int) -> int:
    """Its digits (and one for a sign); ints are limited to MAX_INT_BITS bits."""
    if value.bit_length() > MAX_INT_BITS:
        raise _Refused(f"number too large (over {MAX_INT_BITS} bits)")
    return value.bit_length() // 3 + 2


def _walk(item: object, depth: int, seen: dict[int, int]) -> int:
    if isinstance(item, str | bytes):
        return len(item)
    if isinstance(item, int) and not isinstance(item, bool):
        return _int_size(item)
    if isinstance(item, Namespace):  # printed with its attributes
        item = object.__getattribute__(item, "_Namespace__attrs")
    if not isinstance(item, _CONTAINERS):
        return _SCALAR
    if id(item) in seen:  # shared: counted again, walked once
        return seen[id(item)]
    if depth >= MAX_DEPTH:
        raise _Refused(f"value nested too deeply (over {MAX_DEPTH} levels)")
    seen[id(item)] = _SCALAR  # a cycle prints as [...]
    total = 2
    pairs = isinstance(item, dict | _ITEMS_VIEW)
    for element in cast(Iterable[Any], item.items() if isinstance(item, dict) else item):
        if pairs:
            total += (
                2 * _ITEM + _walk(element[0], depth + 1, seen) + _walk(element[1], depth + 1, seen)
            )
        elif type(element) is str:
            total += _ITEM + len(element)
        else:
            total += _ITEM + _walk(element, depth + 1, seen)
        if total > MAX_VALUE:
            raise _too_large()
    seen[id(item)] = total
    return total


def _expect(size: float) -> None:
    """Refuse to make a value of this (predicted) size."""
    if size > MAX_VALUE:
        raise _too_large()
    if getattr(_local, "spent", 0) + size > BUDGET:
        raise _Refused(f"the values it makes exceed {BUDGET} characters in all")


def _admit(value: _T) -> _T:
    """Charge a value just made to the render's budget."""
    size = _size(value)
    spent = getattr(_local, "spent", 0) + size
    if size > MAX_VALUE or spent > BUDGET:
        _expect(size)
    _local.spent = spent
    return value


def _check_text(*values: object) -> None:
    """An operand larger than any value a template may make (a large input) is refused."""
    for value in values:
        if isinstance(value, str | bytes) and len(value) > MAX_VALUE:
            raise _too_large()


def _bits(bits: float) -> None:
    if bits > MAX_INT_BITS:
        raise _Refused(f"number too large (over {MAX_INT_BITS} bits)")


def _count(value: object) -> int:
    """A width or count argument; anything else fails in the real call."""
    return value if isinstance(value, int) else 0


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value if isinstance(value, str) else str(value)


def _values(args: object) -> Iterable[Any]:
    """The values a format may print from `args` (a tuple, a dict or one value)."""
    if type(args) is tuple:
        return args
    return args.values() if type(args) is dict else (args,)


def _largest(args: object) -> int:
    """Size of the largest value a format can print from its arguments."""
    if type(args) is not tuple and type(args) is not dict and type(args) is not Inputs:
        return _size(args)
    largest = 0
    for value in (args,) if type(args) is Inputs else _values(args):
        largest = max(largest, value.longest() if type(value) is Inputs else _size(value))
    return largest


def _widths(numbers: list[str]) -> int:
    if max(map(len, numbers), default=0) > 7:
        raise _too_large()
    return sum(map(int, numbers))


def _ints(args: object) -> int:
    return sum(abs(v) for v in _values(args) if isinstance(v, int))


def _percent_size(fmt: str | bytes, args: object) -> int:
    """`fmt % args`: the text, every width and precision, the largest argument each time."""
    text = fmt if type(fmt) is str else _text(fmt)
    numbers = _PERCENT_WIDTH.findall(text)
    size = len(text) + (_widths(numbers) if numbers else 0)
    if "*" in text:  # widths taken from the arguments
        size += _ints(args)
    floats = _FLOAT_TEXT if "f" in text or "F" in text else 0
    return size + text.count("%") * (_largest(args) + floats)


def _spread(value: Any) -> Any:
    """The input of a filter that lists its items: a string's characters each become an
    element; anything else that is not a container is listed here, item by item."""
    if isinstance(value, list | tuple | dict | set | frozenset):
        return value
    if isinstance(value, str | bytes):
        _expect(len(value) * (_ITEM + 1))
        return value
    if isinstance(value, range):
        _expect(len(value) * (_ITEM + _size(max(abs(value.start), abs(value.stop)))))
        return value
    items: list[Any] = []
    size = 2
    for item in value:
        size += _ITEM + _size(item)
        _expect(size)
        items.append(item)
    return items


def _join_size(sep: str | bytes, items: Any) -> int:
    if isinstance(items, str | bytes):
        return len(items) * (len(sep) + 1)
    items = list(items)
    return sum(map(_size, items)) + len(sep) * max(len(items) - 1, 0)


def _pad_size(s: str | bytes, width: int, fillchar: object = " ") -> int:
    return max(len(s), _count(width))


def _replace_size(s: object, old: object, new: object, count: int | None = -1) -> int:
    s, old, new = _text(s), _text(old), _text(new)
    hits = s.count(old) if old else len(s) + 1
    if count is not None and _count(count) >= 0:
        hits = min(hits, _count(count))
    return len(s) + hits * max(len(new) - len(old), 0)


def _split_size(s: str | bytes, sep: str | bytes | None = None, maxsplit: int = -1) -> int:
    text = _text(s)
    pieces = (text.count(_text(sep)) if sep else len(text) // 2) + 1
    if _count(maxsplit) >= 0:
        pieces = min(pieces, _count(maxsplit) + 1)
    return len(text) + pieces * (_ITEM + 2)


def _lines(text: str) -> int:
    return sum(text.count(c) for c in _LINE_BREAKS) + 1


def _translate_size(s: str | bytes, table: object, delete: object = b"") -> int:
    if isinstance(s, bytes):
        return len(s)
    items = (
        table.values()
        if isinstance(table, dict)
        else (table if isinstance(table, list | tuple) else ())
    )
    longest = max((len(v) for v in items if isinstance(v, str)), default=1)
    return len(s) * max(longest, 1)


_METHOD_SIZES: dict[str, Callable[..., int]] = {  # str and bytes methods, by name
    "center": _pad_size,
    "ljust": _pad_size,
    "rjust": _pad_size,
    "zfill": _pad_size,
    "expandtabs": lambda s, tabsize=8: len(s) + _text(s).count("\t") * max(_count(tabsize), 0),
    "replace": _replace_size,
    "split": _split_size,
    "rsplit": _split_size,
    "splitlines": lambda s, keepends=False: len(s) + _lines(_text(s)) * (_ITEM + 2),
    "translate": _translate_size,
    "encode": lambda s, encoding="utf-8", errors="strict": len(s) * 10,
    "hex": lambda s, *args: len(s) * 3,
}


def _format_size(env: _Sandbox, fmt: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    """`fmt.format(*args, **kwargs)`: each field's value, found as the sandbox's formatter
    finds it, plus the numbers of its spec; a nested field adds every int argument."""
    formatter = jinja2.sandbox.SandboxedFormatter(env)
    size, auto = len(fmt), 0
    floats = _FLOAT_TEXT if "f" in fmt or "F" in fmt else 0
    for _, field, spec, _ in string.Formatter().parse(fmt):
        if field is None:
            continue
        if field == "":
            field, auto = str(auto), auto + 1
        value, _ = formatter.get_field(field, args, kwargs)
        size += _size(value) + floats + _widths(_NUMBER.findall(spec or ""))
        if spec and "{" in spec:
            size += _ints(args) + _ints(kwargs)
        _expect(size)
    return size


def _binop(op: str, left: Any, right: Any) -> Any:
    """A binary operator of the template, its result's size predicted first (an operand
    too large is refused by _size)."""
    if op == "*":
        if isinstance(left, _SEQUENCES) and isinstance(right, int):
            _expect(_size(left) * max(right, 0))
        elif isinstance(left, int) and isinstance(right, _SEQUENCES):
            _expect(_size(right) * max(left, 0))
        elif isinstance(left, int) and isinstance(right, int):
            _bits(left.bit_length() + right.bit_length())
    elif op == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1:
        _bits(right)  # the result has at least as many bits, and `right` fits a float
        _bits(right * math.log2(abs(left)))
    elif op == "+" and isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
        _expect(_size(left) + _size(right))
    elif op == "%" and isinstance(left, str | bytes):
        _expect(_percent_size(left, right))
    return _admit(_OPERATORS[op](left, right))


_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
    "**": operator.pow,
}


# Filters --------------------------------------------------------------------------------


def _round_size(value: object, precision: int = 0, method: str = "common") -> int:
    if abs(_count(precision)) > MAX_ROUND_DIGITS:
        raise _Refused(f"number too large (rounding to over {MAX_ROUND_DIGITS} digits)")
    return 0


def _indent_size(s: object, width: object = 4, first: bool = False, blank: bool = False) -> int:
    text = _text(s)
    return len(text) + (_lines(text) + 1) * (
        len(width) if isinstance(width, str) else _count(width)
    )


def _wordwrap_size(
    s: object,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> int:
    text = _text(s)
    breaks = len(text) // max(_count(width), 1) + sum(text.count(c) for c in " \t\n\r\v\f-")
    return len(text) + 7 * text.count("\t") + (breaks + 1) * len(_text(wrapstring or "\n"))


_FILTER_SIZES: dict[str, Callable[..., int]] = {  # predicted from the filters' arguments
    "center": lambda value, width=80: max(_size(value), _count(width)),
    "format": lambda value, *args, **kwargs: _percent_size(_text(value), kwargs or args),
    "indent": _indent_size,
    "join": lambda value, d="", attribute=None: _join_size(_text(d), value),
    "replace": lambda s, old, new, count=None: _replace_size(s, old, new, count),
    "wordwrap": _wordwrap_size,
    "batch": lambda value, linecount, fill_with=None: (
        _size(value) + _count(linecount) * (_ITEM + _size(fill_with))
    ),
    "slice": lambda value, slices, fill_with=None: (
        _size(value) + _count(slices) * (2 * _ITEM + _size(fill_with))
    ),
    "round": _round_size,
}
_SPREADING = frozenset({"list", "sort", "unique", "batch", "slice", "groupby", "join"})


def _guard(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter whose arguments are checked, its result's size predicted when it could
    multiply, and its result charged to the budget."""
    lead = 0 if getattr(func, "jinja_pass_arg", None) is None else 1  # context/env first
    size = _FILTER_SIZES.get(name)

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        rest = list(args[lead:])
        _check_text(*rest, *kwargs.values())
        if rest and name in _SPREADING:
            rest[0] = _spread(rest[0])
        if size is not None:
            _expect(size(*rest, **kwargs))
        return _admit(func(*args[:lead], *rest, **kwargs))

    return guarded


@jinja2.pass_environment
def _sum(
    environment: jinja2.Environment,
    iterable: Iterable[Any],
    attribute: str | int | None = None,
    start: Any = 0,
) -> Any:
    """Jinja's `sum`, adding with the template's checked `+` (lists add up too)."""
    get = make_attrgetter(environment, attribute) if attribute is not None else None
    total = start
    for item in iterable:
        total = _binop("+", total, get(item) if get is not None else item)
    return total


def _wordcount(s: object) -> int:
    return sum(1 for _ in _WORD.finditer(_text(s)))


def _tojson(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


# The environment ------------------------------------------------------------------------


class _Undefined(jinja2.StrictUndefined):
    """StrictUndefined whose error says only what kind of thing is missing; which one is
    for render() to say, quoting a name only when the template spells it out."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        obj, name = self._undefined_obj, self._undefined_name
        what = (
            "value"
            if self._undefined_hint
            else "input"
            if type(obj) is Inputs
            else "variable"
            if obj is missing
            else "attribute or element"
        )
        _local.undefined = (what, name if isinstance(name, str) else None)
        return f"undefined {what}"


class _CodeGenerator(CodeGenerator):
    """Compiles `~`, slices and list/tuple/dict displays to calls of _Sandbox methods, so
    that they are checked like the operators (Jinja compiles them to plain Python)."""

    @optimizeconst
    def visit_Concat(self, node: jinja2.nodes.Concat, frame: Frame) -> None:
        markup = (
            "context.eval_ctx.autoescape"
            if frame.eval_ctx.volatile
            else repr(bool(frame.eval_ctx.autoescape))
        )
        self.write(f"environment.join_values({markup}, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    @optimizeconst
    def visit_Getitem(self, node: jinja2.nodes.Getitem, frame: Frame) -> None:
        if not isinstance(node.arg, jinja2.nodes.Slice):
            super().visit_Getitem(node, frame)
            return
        self.write("environment.slice_of(")
        self.visit(node.node, frame)
        for part in (node.arg.start, node.arg.stop, node.arg.step):
            self.write(", ")
            if part is None:
                self.write("None")
            else:
                self.visit(part, frame)
        self.write(")")

    def visit_List(self, node: jinja2.nodes.List, frame: Frame) -> None:
        self.write("environment.literal(")
        super().visit_List(node, frame)
        self.write(")")

    def visit_Dict(self, node: jinja2.nodes.Dict, frame: Frame) -> None:
        self.write("environment.literal(")
        super().visit_Dict(node, frame)
        self.write(")")

    def visit_Tuple(self, node: jinja2.nodes.Tuple, frame: Frame) -> None:
        if node.ctx != "load":  # a target: `{% for a, b in ... %}`
            super().visit_Tuple(node, frame)
            return
        self.write("environment.literal(")
        super().visit_Tuple(node, frame)
        self.write(")")


class _Sandbox(jinja2.sandbox.ImmutableSandboxedEnvironment):
    """The sandbox with every way of making a value checked (see the module docstring)."""

    intercepted_binops = frozenset(_OPERATORS)
    code_generator_class = _CodeGenerator

    def __init__(self) -> None:
        super().__init__(
            undefined=_Undefined, autoescape=False, keep_trailing_newline=True, finalize=_finalize
        )
        del self.globals["lipsum"]
        del self.filters["urlize"]
        self.filters.update(fromjson=json.loads, tojson=_tojson, sum=_sum, wordcount=_wordcount)
        self.filters = {name: _guard(name, f) for name, f in self.filters.items()}

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        return _binop(operator, left, right)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        method = getattr(obj, "__wrapped__", obj)  # the sandbox wraps str.format
        receiver = getattr(method, "__self__", None)
        name = getattr(method, "__name__", "")
        _check_text(receiver, *args, *kwargs.values())
        if isinstance(receiver, str | bytes | int) or receiver is dict:
            args = self._predict(receiver, name, args, kwargs)
        return _admit(super().call(context, obj, *args, **kwargs))

    def _predict(
        self, receiver: object, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Any, ...]:
        """Refuse a method call of a string, an int or dict whose result would be too
        large; the argument of `join` or `fromkeys`, listed, replaces an iterator."""
        plain = {k: v for k, v in kwargs.items() if k not in _CALL_EXTRAS}
        if isinstance(receiver, str | bytes):
            if name == "join" and len(args) == 1:
                args = (_spread(args[0]),)
                _expect(_join_size(receiver, args[0]))
            elif name == "format" and isinstance(receiver, str):
                _expect(_format_size(self, receiver, args, plain))
            elif name == "format_map" and isinstance(receiver, str) and len(args) == 1:
                _expect(_format_size(self, receiver, (), args[0]))
            elif name in _METHOD_SIZES:
                _expect(_METHOD_SIZES[name](receiver, *args, **plain))
        elif receiver is dict and name == "fromkeys" and args:
            args = (_spread(args[0]), *args[1:])
            _expect(len(args[0]) * (2 * _ITEM + 1))
        elif isinstance(receiver, int) and name == "to_bytes":
            _expect(_count(args[0] if args else plain.get("length", 1)))
        return args

    def concat(self, parts: Iterable[str]) -> str:
        """Joins the output of a macro, a block or `{% set %}...{% endset %}`."""
        parts = list(parts)
        _expect(sum(map(len, parts)))
        return _admit("".join(parts))

    def join_values(self, markup: bool, values: tuple[Any, ...]) -> str:
        """The `~` operator."""
        _check_text(*values)
        _expect(sum(map(_size, values)))
        return _admit(markup_join(values) if markup else str_join(values))

    def literal(self, value: _T) -> _T:
        return _admit(value)

    def slice_of(self, obj: Any, start: Any, stop: Any, step: Any) -> Any:
        part = slice(start, stop, step)
        if isinstance(obj, str | bytes):
            _expect(len(range(*part.indices(len(obj)))))
        return _admit(obj[part])

    def get_template(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise _Refused("include, import and extends are not supported")

    select_template = get_or_select_template = get_template


@jinja2.pass_eval_context
def _finalize(eval_ctx: EvalContext, value: object) -> str:
    """Every `{{ expression }}`: printed (and escaped, in an autoescape block) here and
    charged, so that a loop in a macro or a block cannot pile up output."""
    if type(value) is not str:
        if isinstance(value, _WALKED):
            _size(value)  # before printing it
        value = str(value)
    if eval_ctx.autoescape:
        value = escape(value)
    size = len(value)
    spent = getattr(_local, "spent", 0) + size
    if size > MAX_VALUE or spent > BUDGET:
        _expect(size)
    _local.spent = spent
    return value


_ENV = _Sandbox()


# Checking and rendering -----------------------------------------------------------------


def _ours(frame: FrameType) -> bool:
    """A frame of Jinja or of the template's own code. The timeout is raised only there:
    raised in a frame that merely interrupted the work (a gc callback another library
    registered), it would be swallowed, and Python would drop the hook with it."""
    name = frame.f_code.co_filename
    return name.startswith("<") or f"{os.sep}jinja2{os.sep}" in name


Clock = Callable[[], float]


@contextmanager
def _deadline(seconds: float, clock: Clock) -> Iterator[Callable[[], None]]:
    """Raise _Timeout in this thread once `seconds` have passed on `clock`, from a trace
    hook between Python lines of Jinja and the template (see `_ours`); yields a function
    that re-installs the hook (Python removes it when the hook itself fails, e.g. on a
    RecursionError that Jinja then catches)."""
    started = clock()

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        if clock() - started > seconds and _ours(frame):
            raise _Timeout
        # This module's own steps are bounded: checked when called, not line by line
        return None if frame.f_code.co_filename == __file__ else tracer

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        yield lambda: sys.settrace(tracer)
    finally:
        sys.settrace(previous)


def check(
    source: str, label: str, *, seconds: float = RENDER_SECONDS, clock: Clock = time.monotonic
) -> None:
    """Syntax errors are SPC errors, reported before anything is fetched; parsing stops
    once `seconds` have passed on `clock`."""
    try:
        with _deadline(seconds, clock):
            _ENV.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise InvalidArgument(
            f"{label}: template syntax error at line {exc.lineno}: {exc.message}"
        ) from None
    except (RecursionError, MemoryError):
        raise InvalidArgument(f"{label}: template nested too deeply") from None
    except Exception as exc:  # the lexer's and parser's own bugs, say
        raise InvalidArgument(
            f"{label}: template cannot be parsed ({type(exc).__name__})"
        ) from None
    except _Timeout:
        raise InvalidArgument(f"{label}: template took longer than {seconds}s to parse") from None


def render(
    source: str,
    inputs: Inputs,
    label: str,
    *,
    seconds: float = RENDER_SECONDS,
    clock: Clock = time.monotonic,
) -> bytes:
    """Render with the bounds above, compiling and rendering stopped once `seconds` have
    passed on `clock`; errors name the object, never input values."""
    _local.spent, _local.undefined = 0, None
    try:
        with _deadline(seconds, clock) as rearm:
            template = _ENV.from_string(source)
            rearm()
            out: list[str] = []
            size = 0
            for chunk in template.generate(objects=inputs):
                size += len(chunk.encode())
                if size > MAX_OUTPUT:
                    raise InvalidArgument(f"{label}: template output exceeds {MAX_OUTPUT} bytes")
                out.append(chunk)
            return "".join(out).encode()
    except (_Timeout, Exception) as exc:
        failure: BaseException = exc
    finally:
        _local.spent = 0
    raise _error(failure, source, label, seconds) from None


_KINDS: tuple[tuple[type[BaseException], str], ...] = (
    (ZeroDivisionError, "division by zero"),
    (RecursionError, "recursion or nesting too deep"),
    (MemoryError, "out of memory"),
    (OverflowError, "number too large"),
    (json.JSONDecodeError, "not valid JSON"),
    (UnicodeError, "text that cannot be encoded or decoded"),
    (ValueError, "invalid value"),
    (TypeError, "wrong type of value or argument"),
    (LookupError, "no such element"),
    (AttributeError, "no such attribute"),
    (jinja2.TemplateError, "template error"),
)


def _error(exc: BaseException, source: str, label: str, seconds: float) -> MountError:
    """The MountError for a failed render: what went wrong and where, no value."""
    if isinstance(exc, MountError):
        return exc
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return InvalidArgument(
            f"{label}: template syntax error at line {exc.lineno}: {exc.message}"
        )
    line = _line(exc)
    where = f" at line {line}" if line else ""
    if isinstance(exc, _Timeout):
        return InvalidArgument(f"{label}: template took longer than {seconds}s to render{where}")
    if isinstance(exc, _Refused):
        return InvalidArgument(f"{label}: template refused{where}: {exc.kind}")
    if isinstance(exc, jinja2.exceptions.SecurityError):
        return InvalidArgument(f"{label}: template refused by the sandbox{where}")
    if isinstance(exc, jinja2.UndefinedError):
        what, name = getattr(_local, "undefined", None) or ("value", None)
        if name is not None and name in _spelled(source):
            what = f"{what} {quote(name)}"
        error = NotFound if what.startswith("input") else InvalidArgument
        return error(
            f"{label}: template refers to something undefined ({what}){where}; "
            "inputs are objects['<objectName>'] of this SecretProviderClass"
        )
    kind = next((k for t, k in _KINDS if isinstance(exc, t)), type(exc).__name__)
    return InvalidArgument(f"{label}: template failed{where}: {kind}")


def _line(exc: BaseException) -> int | None:
    """The template line of the innermost template frame of the traceback."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            compiled = tb.tb_frame.f_globals.get("__jinja_template__")
            # Jinja rewrites the frames of an Exception to template lines already,
            # a _Timeout keeps the compiled code's own
            line = (
                tb.tb_lineno
                if compiled is None
                else compiled.get_corresponding_lineno(tb.tb_lineno)
            )
        tb = tb.tb_next
    return line


def _spelled(source: str) -> set[str]:
    """The names and strings written in the template: safe to quote in an error."""
    try:
        tree = _ENV.parse(source)
    except Exception:
        return set()
    names = {n.value for n in tree.find_all(jinja2.nodes.Const) if isinstance(n.value, str)}
    names.update(n.name for n in tree.find_all(jinja2.nodes.Name))
    names.update(n.attr for n in tree.find_all(jinja2.nodes.Getattr))
    return names

r"""Go's regexp.Compile and regexp.MatchString, on Google's RE2 (the `google-re2` binding).

sops matches `encrypted_regex` / `unencrypted_regex` against map keys with Go's regexp,
whose syntax is RE2's: ASCII-only `\d` `\w` `\s` `\b`, `[[:digit:]]` and the other POSIX
classes, `\pL`, `\Q...\E`, `\x{263a}`, `\A` and `\z`, flags (`(?i)`, also mid-pattern),
no lookaround and no backreferences. Go's regexp is a port of RE2, so RE2 decides what a
pattern matches and most of what it refuses; this module adds where the two differ,
as tests/compat/go/test_differential.py finds against the real Go:

- Capture names: Go takes ASCII letters, digits and `_` only (RE2 Unicode letters too),
  in `(?P<name>` and, as Go >= 1.22 does, `(?<name>` (so `(?<=x)` is Go's "invalid
  named capture"; Go 1.19 refused every `(?<`); the name ends at the pattern's first `>`.
- `\C` (any byte) is RE2's only: Go refuses it.
- Invalid UTF-8 (a str's surrogateescape'd bytes, or bytes): Go refuses the pattern where
  its parser meets the byte (RE2 before parsing); in the subject each invalid byte is one
  U+FFFD, as Go's regexp decodes a string (RE2 would match no `.` there).
- Error messages are Go's, "error parsing regexp: <code>: `<expr>`", from RE2's codes and
  quotes where those agree with Go's, and Go's own where they do not (a lazy or stacked
  out-of-range repeat, `\x{` at the end, `\p` ending a class).

Where the pre-pass finds something Go refuses and RE2 would not (or not there), RE2 gets
the pattern cut at that token and an escape it refuses in its place, so that an earlier
error still comes first, as from Go's left-to-right parser.

Known divergences, not emulated (no key regex comes near them): size limits (Go refuses
past about 3.3 million instructions of its own count, "expression too large"; RE2 past
its memory budget, 128 MiB here, reported with Go's words; they disagree near either
limit, e.g. `.{1000}` written a thousand times), Go's limit of 1000 nested levels
("expression nests too deeply"), the Unicode version of the tables behind `\pL` and
`(?i)` (RE2's is newer, so letters assigned lately may match only here), and the extra
`\p{...}` names the newest Go releases take (`\p{Letter}`, `\p{LC}`, `\p{Cn}`), which RE2,
like Go 1.19, refuses.
"""

from __future__ import annotations

import codecs
from itertools import chain
from typing import Protocol, cast

import re2

_ERROR_PREFIX = "error parsing regexp: "
# RE2's error strings (re2.cc's kErrorStrings) → Go's regexp/syntax ErrorCode text.
_CODES = {
    "unexpected error": "regexp/syntax: internal error",
    "invalid escape sequence": "invalid escape sequence",
    "invalid character class": "invalid character class",
    "invalid character class range": "invalid character class range",
    "missing ]": "missing closing ]",
    "missing )": "missing closing )",
    "unexpected )": "unexpected )",
    "trailing \\": "trailing backslash at end of expression",
    "no argument for repetition operator": "missing argument to repetition operator",
    "invalid repetition size": "invalid repeat count",
    "bad repetition operator": "invalid nested repetition operator",
    "invalid perl operator": "invalid or unsupported Perl syntax",
    "invalid UTF-8": "invalid UTF-8",
    "invalid named capture group": "invalid named capture",
    "pattern too large - compile failed": "expression too large",
    "pattern too large - reverse compile failed": "expression too large",
}
# RE2's memory budget per pattern; its default, 8 MiB, refuses `(?:\pL{100}){10}`.
_MAX_MEM = 128 << 20
_HEX = frozenset("0123456789abcdefABCDEF")
_NAME = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def _go_bytes(exc: UnicodeError) -> tuple[bytes, int]:
    """Encode error handler: a str as the bytes of a Go string. A surrogateescape'd
    byte (U+DC80..U+DCFF) is that byte; another lone surrogate is its 3-byte encoding
    (which Go, like Python, reads as three invalid bytes)."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    chunk = exc.object[exc.start : exc.end]
    return b"".join(
        bytes([ord(ch) - 0xDC00])
        if 0xDC80 <= ord(ch) <= 0xDCFF
        else ch.encode("utf-8", "surrogatepass")
        for ch in chunk
    ), exc.end


def _fffd_per_byte(exc: UnicodeError) -> tuple[str, int]:
    """Decode error handler: each invalid byte is one U+FFFD, as Go decodes a string."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return "\ufffd", exc.start + 1


codecs.register_error("csiprovider.compat.go.regexp.bytes", _go_bytes)
codecs.register_error("csiprovider.compat.go.regexp.fffd", _fffd_per_byte)


class RegexpError(ValueError):
    """A pattern Go's regexp.Compile refuses; str() is Go's error text, e.g.
    "error parsing regexp: invalid or unsupported Perl syntax: `(?=`"."""

    def __init__(self, code: str, expr: str) -> None:
        super().__init__(f"{_ERROR_PREFIX}{code}: `{expr}`")
        self.code = code  # Go's syntax.ErrorCode text, e.g. "missing closing )"
        self.expr = expr  # the part of the pattern Go quotes


class _Compiled(Protocol):
    """The part of re2's compiled pattern we use (re2 has no type stubs)."""

    def search(self, text: bytes) -> object | None: ...


class Regexp:
    """A compiled Go regular expression; build one with `compile`."""

    __slots__ = ("_compiled", "source")

    def __init__(self, source: str, compiled: _Compiled) -> None:
        self.source = source  # the pattern (a surrogateescape'd str for invalid UTF-8)
        self._compiled = compiled

    def search(self, text: str | bytes) -> bool:
        """Whether the pattern matches anywhere in text, as Go's (*Regexp).MatchString
        answers (a str's surrogateescape'd bytes being invalid UTF-8 there)."""
        return self._compiled.search(_runes_utf8(text)) is not None

    def __repr__(self) -> str:
        return f"Regexp({self.source!r})"


def compile(source: str | bytes, max_mem: int = _MAX_MEM) -> Regexp:
    """Go's regexp.Compile(source): the pattern, or RegexpError with Go's message.
    `max_mem` bounds RE2's memory for the pattern (and so its compile time): a caller
    compiling untrusted patterns passes RE2's default, 8 MiB, and a pattern needing more
    is refused as "expression too large"."""
    pattern = _canonical(source)
    rewritten, refusal = _go_prepass(pattern)
    options = re2.Options()
    options.log_errors = False  # no absl log line on stderr for a refused pattern
    options.max_mem = max_mem
    try:
        compiled = cast(_Compiled, re2.compile(rewritten, options))
    except re2.error as exc:
        raise _go_error(exc, pattern, refusal) from None
    if refusal is not None:  # pragma: no cover - RE2 refuses the sentinel escape
        raise refusal[1]
    return Regexp(pattern, compiled)


def match_string(source: str | bytes, text: str | bytes) -> bool:
    """Go's regexp.MatchString(source, text); RegexpError if Go refuses the pattern."""
    return compile(source).search(text)


def _canonical(source: str | bytes) -> str:
    """The pattern as Go's bytes, decoded with surrogateescape: valid UTF-8 as text,
    each invalid byte one lone surrogate U+DC80..U+DCFF."""
    raw = (
        source
        if isinstance(source, bytes)
        else source.encode("utf-8", "csiprovider.compat.go.regexp.bytes")
    )
    return raw.decode("utf-8", "surrogateescape")


def _runes_utf8(text: str | bytes) -> bytes:
    """The UTF-8 of the runes Go reads from text (U+FFFD per invalid byte)."""
    if isinstance(text, str):
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "csiprovider.compat.go.regexp.bytes")
    return text.decode("utf-8", "csiprovider.compat.go.regexp.fffd").encode("utf-8")


def _bad(ch: str) -> bool:
    return "\udc80" <= ch <= "\udcff"


def _first_bad(text: str) -> int:
    return next((k for k, ch in enumerate(text) if _bad(ch)), -1)


class _Refused(Exception):
    """Raised by the pre-pass where Go refuses the pattern: the index where the refused
    token starts, and Go's error."""

    def __init__(self, at: int, error: RegexpError) -> None:
        super().__init__(str(error))
        self.at = at
        self.error = error


def _go_prepass(src: str) -> tuple[str, tuple[str, RegexpError] | None]:
    """Walk the pattern as Go's parser tokenises it, for what Go refuses and RE2 would
    not (or not at the same place). Answers the pattern for RE2 and that refusal, if
    any: then the pattern is cut where the refused token starts and a sentinel escape
    that RE2 refuses is put there (an escaped private-use character the pattern does not
    hold), so that RE2 still reports an earlier error first, as Go's left-to-right parser
    would."""
    try:
        _scan(src)
    except _Refused as refused:
        unused = (chr(c) for c in chain(range(0xE000, 0xF900), range(0xF0000, 0xFFFFE)))
        sentinel = next(ch for ch in unused if ch not in src)
        return src[: refused.at] + "\\" + sentinel, (sentinel, refused.error)
    # Invalid UTF-8 the scan did not reach lies past a place where Go (and RE2) refuse
    # the pattern: RE2, which would refuse it first, need not see it.
    bad = _first_bad(src)
    return (src if bad < 0 else src[:bad]), None


def _scan(src: str) -> None:
    """Go's tokens, left to right; _Refused at the first that Go refuses here."""
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if _bad(c):
            raise _Refused(i, RegexpError("invalid UTF-8", src[i:]))
        if c == "\\":
            i = _escape(src, i, in_class=False)
        elif c == "[":
            i = _char_class(src, i)
        elif c == "(" and src.startswith("?", i + 1):
            i = _group_head(src, i)
        else:
            i += 1


def _escape(src: str, i: int, in_class: bool) -> int:
    """The escape at src[i] == '\\'; answers the index after it."""
    n = len(src)
    if i + 1 >= n:  # a trailing backslash: RE2 refuses it as Go does
        return n
    e = src[i + 1]
    if _bad(e):
        raise _Refused(i, RegexpError("invalid UTF-8", src[i + 1 :]))
    if e == "C":
        raise _Refused(i, RegexpError("invalid escape sequence", "\\C"))
    if e == "Q" and not in_class:
        end = src.find("\\E", i + 2)
        literal = src[i + 2 :] if end < 0 else src[i + 2 : end]
        bad = _first_bad(literal)
        if bad >= 0:
            raise _Refused(i, RegexpError("invalid UTF-8", literal[bad:]))
        return n if end < 0 else end + 2
    if e in "pP":
        if i + 2 >= n:  # RE2 calls a `\p` ending a class an invalid escape
            raise _Refused(i, RegexpError("invalid character class range", src[i:]))
        if not src.startswith("{", i + 2):  # \pL: one rune names the class
            if i + 2 < n and _bad(src[i + 2]):
                raise _Refused(i, RegexpError("invalid UTF-8", src[i + 2 :]))
            return min(i + 3, n)
        end = src.find("}", i + 3)
        checked = src[i:] if end < 0 else src[i + 3 : end]  # what Go's checkUTF8 reads
        bad = _first_bad(checked)
        if bad >= 0:
            raise _Refused(i, RegexpError("invalid UTF-8", checked[bad:]))
        return n if end < 0 else end + 1
    if e == "x":
        return _hex_escape(src, i)
    return i + 2


def _hex_escape(src: str, i: int) -> int:
    r"""`\x` then two hex digits or `{hex}`, read rune by rune as Go does."""
    n = len(src)
    if not src.startswith("{", i + 2):  # Go reads two runes, then checks them
        for k in (i + 2, i + 3):
            if k < n and _bad(src[k]):
                raise _Refused(i, RegexpError("invalid UTF-8", src[k:]))
        if not _HEX.issuperset(src[i + 2 : i + 4]) or i + 4 > n:
            return n  # Go refuses the escape here, and so does RE2
        return i + 4
    k = i + 3
    while True:
        if k >= n:  # RE2 calls this "invalid UTF-8"; Go an unfinished escape
            raise _Refused(i, RegexpError("invalid escape sequence", src[i:n]))
        ch = src[k]
        if _bad(ch):
            raise _Refused(i, RegexpError("invalid UTF-8", src[k:]))
        if ch == "}" and k > i + 3:
            return k + 1  # RE2 judges the value (past U+10FFFF?) as Go does
        if ch not in _HEX:
            return n  # Go refuses the escape here (its text ends with ch), as RE2 does
        k += 1


def _char_class(src: str, i: int) -> int:
    r"""The class at src[i] == '['; answers the index after its `]` (or the end, where
    RE2 reports the missing `]` as Go does). Go's parseClass: POSIX `[:name:]`, `\p`
    classes, Perl `\d`-style classes, else a character, maybe the low end of a range."""
    n = len(src)
    k = i + 2 if src.startswith("^", i + 1) else i + 1
    first = True  # a `]` right after `[` or `[^` is a literal
    while k < n:
        c = src[k]
        if c == "]" and not first:
            return k + 1
        first = False
        if src.startswith("[:", k):
            end = src.find(":]", k + 2)
            if end >= 0:
                name = src[k : end + 2]
                if _first_bad(name) >= 0:  # Go looks the name up without a UTF-8 check
                    raise _Refused(k, RegexpError("invalid character class range", name))
                k = end + 2
                continue
        if c == "\\":
            is_char = src[k + 1 : k + 2] not in ("d", "D", "s", "S", "w", "W", "p", "P", "")
            k = _escape(src, k, in_class=True)
        elif _bad(c):
            raise _Refused(k, RegexpError("invalid UTF-8", src[k:]))
        else:
            is_char, k = True, k + 1
        if is_char and src.startswith("-", k) and k + 1 < n and src[k + 1] != "]":
            k += 1  # the high end of a range: a character, whatever it looks like
            if src[k] == "\\":
                if src[k + 1 : k + 2] in ("p", "P"):
                    return n  # Go: "invalid escape sequence" here, as RE2 says
                k = _escape(src, k, in_class=True)
            elif _bad(src[k]):
                raise _Refused(k, RegexpError("invalid UTF-8", src[k:]))
            else:
                k += 1
    return n


def _group_head(src: str, i: int) -> int:
    """`(?` at src[i]: a named capture by Go's rules (Go >= 1.22's `(?<name>` too);
    flags are left to RE2, but for invalid UTF-8 among them."""
    t = src[i:]
    starts_p = len(t) > 4 and t[2] == "P" and t[3] == "<"
    starts_name = len(t) > 3 and t[2] == "<"
    if starts_p or starts_name:
        end = t.find(">")  # Go: the first '>' anywhere after the group's start
        if end < 0:
            bad = _first_bad(t)
            if bad >= 0:
                raise _Refused(i, RegexpError("invalid UTF-8", t[bad:]))
            raise _Refused(i, RegexpError("invalid named capture", t))
        name = t[4 if starts_p else 3 : end]
        bad = _first_bad(name)
        if bad >= 0:
            raise _Refused(i, RegexpError("invalid UTF-8", name[bad:]))
        if not name or not _NAME.issuperset(name):
            raise _Refused(i, RegexpError("invalid named capture", t[: end + 1]))
        return i + end + 1  # RE2 takes Go's names (and repeated ones) as they are
    negated = saw_flag = False  # Go's flag loop
    for k in range(2, len(t)):
        c = t[k]
        if _bad(c):
            raise _Refused(i, RegexpError("invalid UTF-8", t[k:]))
        if c in "imsU":
            saw_flag = True
        elif c == "-" and not negated:
            negated, saw_flag = True, False
        elif c in ":)" and (saw_flag or not negated):
            return i + k + 1
        else:
            break
    # Go refuses the group here, its text ending with the rune that stopped it (which
    # may start what follows); RE2 says the same.
    return len(src)


def _go_error(exc: Exception, pattern: str, refusal: tuple[str, RegexpError] | None) -> RegexpError:
    """RE2's refusal as Go words it (or the pre-pass's, if RE2 stopped at its sentinel)."""
    raw = exc.args[0] if exc.args else ""
    message = raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else str(raw)
    code, expr = _split(message)
    if code == "unexpected )":  # met before any sentinel; Go quotes the whole pattern
        return RegexpError(code, pattern)
    if refusal is not None and refusal[0] in message:
        return refusal[1]
    if code in ("missing closing )", "expression too large"):
        return RegexpError(code, pattern)  # Go quotes the whole pattern (as given)
    if code == "invalid repeat count" and _out_of_range(expr):
        expr = expr.removesuffix("?")  # Go quotes `{2,1}` of `{2,1}?`
    if code == "invalid nested repetition operator":
        # `x*{1001}`: Go refuses the count before the stacking, RE2 the other way round.
        last = expr[expr.rfind("{") :] if expr.rstrip("?").endswith("}") else ""
        if last and _out_of_range(last):
            return RegexpError("invalid repeat count", last.removesuffix("?"))
    return RegexpError(code, expr)


def _split(message: str) -> tuple[str, str]:
    """RE2's "<code>: <arg>" (or "<code>") as Go's code text and RE2's arg."""
    for re2_code in sorted(_CODES, key=len, reverse=True):
        if message == re2_code:
            return _CODES[re2_code], ""
        if message.startswith(re2_code + ": "):
            return _CODES[re2_code], message[len(re2_code) + 2 :]
    return "regexp/syntax: internal error", message  # pragma: no cover


def _out_of_range(repeat: str) -> bool:
    """Whether `{min}`, `{min,}` or `{min,max}` (maybe then `?`) is itself out of range,
    which Go refuses before reading a `?` (a repeat nested past 1000 is refused after)."""
    low, _, high = repeat.removesuffix("?").removeprefix("{").removesuffix("}").partition(",")
    if not low.isdigit() or not (high == "" or high.isdigit()):
        return False
    return int(low) > 1000 or (high != "" and (int(high) > 1000 or int(low) > int(high)))

"""Go's time.ParseDuration, for `rotationPollInterval` and `--rotation-poll-interval`.

The driver and vault-csi-provider document these as Go durations ("2m", "1h30m",
"1.5s", "300ms"), so we accept exactly what Go accepts: an optional sign, then one or
more decimal numbers each with a unit (ns, us, µs, μs, ms, s, m, h), or a bare "0".
The arithmetic is Go's: integer nanoseconds, a fraction scaled through float64 and
truncated, an error past 2^63-1 ns (and Go's unsigned wrap-around when two terms of
exactly 2^63 ns add up). Error messages quote the input as the time package does.
"""

from __future__ import annotations

_UNITS = {
    b"ns": 1,
    b"us": 1_000,
    "µs".encode(): 1_000,
    "μs".encode(): 1_000,
    b"ms": 1_000_000,
    b"s": 1_000_000_000,
    b"m": 60_000_000_000,
    b"h": 3_600_000_000_000,
}
_LIMIT = 1 << 63
_UINT64 = (1 << 64) - 1
_DIGITS = b"0123456789"


def _quote(raw: bytes) -> str:
    """The time package's own quote(): ASCII kept (with \\ and \" escaped), every other
    byte of a non-ASCII rune, a control character or invalid UTF-8 written as \\xNN."""
    out = ['"']
    i = 0
    while i < len(raw):
        byte = raw[i]
        if byte < 0x20 or byte >= 0x80:
            width = 1
            if byte >= 0x80:
                for size in (2, 3, 4):  # a whole valid rune is escaped byte by byte
                    try:
                        raw[i : i + size].decode("utf-8")
                    except UnicodeDecodeError:
                        continue
                    width = size
                    break
            out.extend(f"\\x{b:02x}" for b in raw[i : i + width])
            i += width
            continue
        if byte in (0x22, 0x5C):
            out.append("\\")
        out.append(chr(byte))
        i += 1
    out.append('"')
    return "".join(out)


def _text(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _invalid(text: str) -> ValueError:
    return ValueError(f"time: invalid duration {_quote(_text(text))}")


def parse_nanoseconds(text: str) -> int:
    """The duration in nanoseconds, as time.ParseDuration returns it."""
    s = _text(text)
    neg = False
    if s[:1] in (b"-", b"+"):
        neg, s = s[:1] == b"-", s[1:]
    if s == b"0":
        return 0
    if not s:
        raise _invalid(text)
    total = 0
    while s:
        if s[:1] != b"." and s[:1] not in [bytes([d]) for d in _DIGITS]:
            raise _invalid(text)
        i, whole = 0, 0
        while i < len(s) and s[i] in _DIGITS:  # leadingInt
            if whole > _LIMIT // 10:
                raise _invalid(text)
            whole = whole * 10 + s[i] - 48
            if whole > _LIMIT:
                raise _invalid(text)
            i += 1
        pre, s = i > 0, s[i:]
        frac, scale, post = 0, 1.0, False
        if s[:1] == b".":
            s = s[1:]
            i, overflow = 0, False
            while i < len(s) and s[i] in _DIGITS:  # leadingFraction
                if not overflow:
                    if frac > (_LIMIT - 1) // 10:
                        overflow = True
                    else:
                        y = frac * 10 + s[i] - 48
                        if y > _LIMIT:
                            overflow = True
                        else:
                            frac, scale = y, scale * 10
                i += 1
            post, s = i > 0, s[i:]
        if not pre and not post:
            raise _invalid(text)
        i = 0
        while i < len(s) and s[i] != 46 and s[i] not in _DIGITS:
            i += 1
        if i == 0:
            raise ValueError(f"time: missing unit in duration {_quote(_text(text))}")
        name, s = s[:i], s[i:]
        unit = _UNITS.get(name)
        if unit is None:
            raise ValueError(f"time: unknown unit {_quote(name)} in duration {_quote(_text(text))}")
        if whole > _LIMIT // unit:
            raise _invalid(text)
        whole *= unit
        if frac > 0:
            whole += int(float(frac) * (float(unit) / scale))
            if whole > _LIMIT:
                raise _invalid(text)
        total = (total + whole) & _UINT64  # Go's uint64 sum wraps: 2^63ns2^63ns is 0
        if total > _LIMIT:
            raise _invalid(text)
    if neg:
        return -total
    if total > _LIMIT - 1:
        raise _invalid(text)
    return total


def parse_interval(text: str) -> float:
    """A positive Go duration in seconds: how often to rotate, how long to wait."""
    try:
        seconds = parse_nanoseconds(text) / 1e9
    except ValueError:
        seconds = 0.0
    if seconds <= 0:
        raise ValueError(f"invalid duration {text!r}: use a Go duration such as 30s or 2m")
    return seconds

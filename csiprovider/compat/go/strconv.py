"""Go's strconv.ParseBool, strconv.Quote and strconv.FormatFloat.

vault-csi-provider and ASCP parse their boolean parameters (`vaultSkipTLSVerify`,
`usePodIdentity`) with ParseBool, so "1", "t" and "TRUE" are true and "yes" is an error
whose message quotes the input with Quote (also what fmt's %q and %#v print for a string).
FormatFloat's 'g' with the shortest digits is what fmt's %v and the YAML and JSON encoders
write; sops writes floats with 'f' (the MAC), 'G' (dotenv and ini values) and 'f' with
one decimal. All of 'e', 'E', 'f', 'g', 'G' are here, with any precision.
"""

from __future__ import annotations

import math
import struct
from decimal import Decimal
from fractions import Fraction

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_SHORT = {0x07: "\\a", 0x08: "\\b", 0x0C: "\\f", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x0B: "\\v"}


def _is_print(ch: str) -> bool:
    """unicode.IsPrint: letters, marks, numbers, punctuation, symbols and ASCII space."""
    return ch == " " or (ch.isprintable() and ch != "\u00ad")


def quote(text: str | bytes) -> str:
    """strconv.Quote of a Go string; a str's surrogateescape'd bytes are invalid UTF-8."""
    raw = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    out = ['"']
    i = 0
    while i < len(raw):
        rune = ""
        for size in (1, 2, 3, 4):
            try:
                rune = raw[i : i + size].decode("utf-8")
            except UnicodeDecodeError:
                continue
            break
        if not rune:  # invalid UTF-8: one byte at a time
            out.append(f"\\x{raw[i]:02x}")
            i += 1
            continue
        i += len(rune.encode("utf-8"))
        code = ord(rune)
        if rune in '"\\':
            out.append("\\" + rune)
        elif _is_print(rune):
            out.append(rune)
        elif code in _SHORT:
            out.append(_SHORT[code])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def parse_bool(text: str) -> bool:
    """True or False as ParseBool answers; ValueError with Go's message otherwise."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"strconv.ParseBool: parsing {quote(text)}: invalid syntax")


def _float32(value: float) -> float:
    """Go's float32(value): round to nearest, ±Inf past the largest float32."""
    try:
        return float(struct.unpack("<f", struct.pack("<f", value))[0])
    except OverflowError:
        return math.copysign(math.inf, value)


def _shortest32(value: float) -> tuple[str, int]:
    """Shortest digits (and decimal point position) that read back as this float32,
    the closest such when several qualify, the even one of two as close (what Go's
    Ryu-based shortest formatting picks)."""
    bits = struct.unpack("<I", struct.pack("<f", value))[0]
    exact = Fraction(value)
    below = Fraction(struct.unpack("<f", struct.pack("<I", bits - 1))[0]) if bits > 0 else 0
    above_bits = bits + 1
    if above_bits >= 0x7F800000:  # past the largest float32: mirror the gap below
        above = exact + (exact - below)
    else:
        above = Fraction(struct.unpack("<f", struct.pack("<I", above_bits))[0])
    low, high = (below + exact) / 2, (exact + above) / 2
    inclusive = bits % 2 == 0
    for ndigits in range(1, 10):
        mantissa, _, exponent = f"{value:.{ndigits - 1}e}".partition("e")
        base, scale = int(mantissa.replace(".", "")), int(exponent) - (ndigits - 1)
        found: list[tuple[Fraction, int, int]] = []
        for digits in (base - 1, base, base + 1):
            if digits <= 0:
                continue
            decimal = Fraction(digits) * Fraction(10) ** scale
            if low < decimal < high or (inclusive and decimal in (low, high)):
                found.append((abs(decimal - exact), digits % 2, digits))
        if found:
            digits = min(found)[2]
            text = str(digits)
            stripped = text.rstrip("0")
            return stripped, scale + len(text)
    raise AssertionError(f"no shortest form for {value!r}")  # pragma: no cover


def _shortest64(value: float) -> tuple[str, int]:
    digits_tuple, exponent = Decimal(repr(value)).as_tuple()[1:]
    text = "".join(map(str, digits_tuple)).lstrip("0")
    stripped = text.rstrip("0")
    return stripped, len(text) + int(exponent)


def _rounded(value: float, ndigits: int) -> tuple[str, int]:
    """The decimal digits of value (positive, exact) rounded to ndigits significant
    digits, half to even, trailing zeros dropped; and the decimal point's position.
    Go's decimal.Round (bigFtoa) and its Ryu fixed-precision path both give this."""
    _, digit_tuple, exponent = Decimal(value).as_tuple()
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + int(exponent)
    if 0 <= ndigits < len(digits):
        kept = digits[:ndigits]
        rest = digits[ndigits:]
        up = rest[0] > "5" or (
            rest[0] == "5"
            and (rest[1:].strip("0") != "" or (kept != "" and int(kept[-1]) % 2 == 1))
        )
        if up:
            bumped = str(int(kept or "0") + 1)
            if len(bumped) > len(kept):  # 99.. → 100..: one more digit before the point
                point += 1
            kept = bumped[: max(ndigits, 1)]
        digits = kept
    return digits.rstrip("0"), point


def _fmt_e(neg: bool, digits: str, point: int, prec: int, letter: str) -> str:
    """Go's fmtE: d.ddd (prec digits after the point, zero-padded) e±dd."""
    mantissa = digits[:1] or "0"
    if prec > 0:
        mantissa += "." + digits[1 : prec + 1].ljust(prec, "0")
    exp = point - 1 if digits else 0
    return f"{'-' if neg else ''}{mantissa}{letter}{'-' if exp < 0 else '+'}{abs(exp):02d}"


def _fmt_f(neg: bool, digits: str, point: int, prec: int) -> str:
    """Go's fmtF: the integer digits (zero-padded), prec digits after the point."""
    whole = (digits[:point].ljust(point, "0")) if point > 0 else "0"
    text = ("-" if neg else "") + whole
    if prec > 0:
        text += "." + "".join(
            digits[point + k] if 0 <= point + k < len(digits) else "0" for k in range(prec)
        )
    return text


def format_float(value: float, bits: int = 64, *, fmt: str = "g", prec: int = -1) -> str:
    """strconv.FormatFloat(value, fmt, prec, bits) for fmt 'e', 'E', 'f', 'g' or 'G'.

    The default, FormatFloat(value, 'g', -1, bits), is also what fmt's %v prints for a
    float64: the shortest digits that read back (as a float32 when bits is 32), in %e
    form when the exponent is below -4 or at least 6. A negative prec asks for those
    shortest digits in any form ('f', -1: no exponent, as sops's MAC writes floats);
    prec >= 0 rounds the exact binary value half to even, to prec digits after the
    point ('e', 'f') or prec significant digits ('g'; 0 is 1), as Go does."""
    if bits not in (32, 64):
        raise ValueError(f"strconv: illegal FormatFloat bitSize {bits}")
    if fmt not in ("e", "E", "f", "g", "G"):
        raise ValueError(f"strconv.FormatFloat format {fmt!r} is not emulated")
    if bits == 32:
        value = _float32(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    neg = math.copysign(1.0, value) < 0
    magnitude = abs(value)
    shortest = prec < 0
    if magnitude == 0:
        digits, point = "", 0
    elif shortest:
        digits, point = _shortest32(magnitude) if bits == 32 else _shortest64(magnitude)
    else:
        if fmt in "gG" and prec == 0:
            prec = 1
        exact_point = _rounded(magnitude, -1)[1]
        ndigits = {"e": prec + 1, "E": prec + 1, "f": exact_point + prec}.get(fmt, prec)
        digits, point = _rounded(magnitude, ndigits)
    if shortest:  # Go's precision for the shortest digits in each form
        prec = {
            "e": max(len(digits) - 1, 0),
            "E": max(len(digits) - 1, 0),
            "f": max(len(digits) - point, 0),
        }.get(fmt, len(digits))
    if fmt in "eE":
        return _fmt_e(neg, digits, point, prec, fmt)
    if fmt == "f":
        return _fmt_f(neg, digits, point, prec)
    # 'g', 'G' (Go's formatDigits): %e when the exponent is below -4 or at least the
    # precision (6 for the shortest digits), trailing zeros never written.
    eprec = (
        6 if shortest else (len(digits) if prec > len(digits) and len(digits) >= point else prec)
    )
    exp = point - 1
    if exp < -4 or exp >= eprec:
        return _fmt_e(neg, digits, point, min(prec, len(digits)) - 1, "e" if fmt == "g" else "E")
    if prec > point:
        prec = len(digits)
    return _fmt_f(neg, digits, point, max(prec - point, 0))

"""Go's strconv.ParseBool, strconv.Quote and strconv.FormatFloat(f, 'g', -1, bits).

vault-csi-provider and ASCP parse their boolean parameters (`vaultSkipTLSVerify`,
`usePodIdentity`) with ParseBool, so "1", "t" and "TRUE" are true and "yes" is an error
whose message quotes the input with Quote (also what fmt's %q and %#v print for a string).
"""

from __future__ import annotations

import math
import struct
from decimal import Decimal
from fractions import Fraction

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_SHORT = {0x07: "\\a", 0x08: "\\b", 0x0C: "\\f", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t",
          0x0B: "\\v"}


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
                rune = raw[i:i + size].decode("utf-8")
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
    the closest such when several qualify (what Go's Ryu-based shortest formatting picks)."""
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
        found: list[tuple[Fraction, int]] = []
        for digits in (base - 1, base, base + 1):
            if digits <= 0:
                continue
            decimal = Fraction(digits) * Fraction(10) ** scale
            if low < decimal < high or (inclusive and decimal in (low, high)):
                found.append((abs(decimal - exact), digits))
        if found:
            digits = min(found)[1]
            text = str(digits)
            stripped = text.rstrip("0")
            return stripped, scale + len(text)
    raise AssertionError(f"no shortest form for {value!r}")  # pragma: no cover


def _shortest64(value: float) -> tuple[str, int]:
    digits_tuple, exponent = Decimal(repr(value)).as_tuple()[1:]
    text = "".join(map(str, digits_tuple)).lstrip("0")
    stripped = text.rstrip("0")
    return stripped, len(text) + int(exponent)


def format_float(value: float, bits: int = 64) -> str:
    """strconv.FormatFloat(value, 'g', -1, bits), also what fmt's %v prints for a float64:
    the shortest digits that read back (as a float32 when bits is 32), in %e form when
    the exponent is below -4 or at least 6."""
    if bits == 32:
        value = _float32(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return sign + "0"
    digits, point = _shortest32(abs(value)) if bits == 32 else _shortest64(abs(value))
    exp = point - 1
    if exp < -4 or exp >= 6:  # %e, as 'g' decides for the shortest form
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"

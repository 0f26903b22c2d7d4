"""Templates: files rendered from other objects of the same SecretProviderClass (a
`.pgpass`, a `config.yaml`, a JDBC URL).

Jinja2's immutable sandbox with StrictUndefined and no autoescape: no loader (no
filesystem), no network, no attribute access to internals, a missing input is an error
rather than an empty string. Rendering is bounded: RENDER_SECONDS of CPU time (checked by
a trace hook in the rendering thread, so even a loop that prints nothing stops) and
MAX_OUTPUT bytes.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator, Mapping
from types import FrameType
from typing import Any

import jinja2
import jinja2.exceptions
import jinja2.sandbox

from csiprovider.errors import InvalidArgument, NotFound

RENDER_SECONDS = 1.0
MAX_OUTPUT = 1024 * 1024


class _Timeout(Exception):
    pass


class Inputs(Mapping[str, str]):
    """The objects a template may read, recording which ones it did read."""

    def __init__(self, values: Mapping[str, bytes]) -> None:
        self._values = values
        self.used: set[str] = set()

    def __getitem__(self, key: str) -> str:
        if key not in self._values:
            raise KeyError(key)
        self.used.add(key)
        return self._values[key].decode("utf-8", errors="replace")

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def _environment() -> jinja2.sandbox.ImmutableSandboxedEnvironment:
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.filters["fromjson"] = json.loads
    env.filters["tojson"] = lambda v: json.dumps(v, separators=(",", ":"))
    return env


_ENV = _environment()


def check(source: str, label: str) -> None:
    """Syntax errors are SPC errors, reported before anything is fetched."""
    try:
        _ENV.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise InvalidArgument(f"{label}: template syntax error at line {exc.lineno}: "
                              f"{exc.message}") from None


def render(source: str, inputs: Inputs, label: str) -> bytes:
    """Render with the limits above; errors name the object, never input values."""
    started = time.monotonic()

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        if time.monotonic() - started > RENDER_SECONDS:
            raise _Timeout
        return tracer

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        out: list[str] = []
        size = 0
        for chunk in _ENV.from_string(source).generate(objects=inputs):
            size += len(chunk.encode())
            if size > MAX_OUTPUT:
                raise InvalidArgument(f"{label}: template output exceeds {MAX_OUTPUT} bytes")
            out.append(chunk)
        return "".join(out).encode()
    except _Timeout:
        raise InvalidArgument(f"{label}: template took longer than {RENDER_SECONDS}s "
                              "to render") from None
    except jinja2.UndefinedError as exc:
        raise NotFound(f"{label}: template refers to something undefined ({exc.message}); "
                       "inputs are objects['<objectName>'] of this SecretProviderClass") from None
    except jinja2.exceptions.SecurityError as exc:
        raise InvalidArgument(f"{label}: template refused by the sandbox ({exc})") from None
    except (jinja2.TemplateError, ValueError, TypeError, OverflowError) as exc:
        raise InvalidArgument(f"{label}: template failed ({type(exc).__name__})") from None
    finally:
        sys.settrace(previous)

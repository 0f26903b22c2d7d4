"""What one Mount request may make the daemon parse, hold or wait for.

Anyone who may create a SecretProviderClass and a pod reaches this daemon, which serves
every pod of the node; these bounds keep one request from crashing it or taking the
memory and time of the others. Each breach is INVALID_ARGUMENT naming what was too big
and the limit, answered before the expensive work starts. docs/security.md lists them.

YAML is checked on the C parser's event stream, which is iterative: libyaml's *composer*
recurses, and a few hundred KB of `[[[[` would overflow the C stack before any Python
check ran. The walk stops at the first breach, so a hostile document costs milliseconds.

Our bounds answer, never a library's: libyaml 0.2.6 (PyYAML 6.0.4) refuses 1,000 levels
of nesting itself, and its scanner looks up to 1,024 characters ahead of the events, so
its refusal can come before the event that breaches our 32 levels. `yaml_events` walks
on past such a refusal through the text before it, where our check then trips.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from csiprovider.errors import MAX_MESSAGE_CHARS as MAX_MESSAGE_CHARS  # every MountError
from csiprovider.errors import InvalidArgument

MAX_ATTRIBUTES_BYTES = 1024 * 1024  # the driver's attributes: SPC parameters + pod info
MAX_SECRETS_BYTES = 1024 * 1024  # nodePublishSecretRef, as a Kubernetes Secret holds
MAX_OBJECTS_BYTES = 256 * 1024  # one `objects` parameter
MAX_OBJECTS = 500  # objects in one SecretProviderClass
MAX_YAML_DEPTH = 32  # nested mappings and sequences
MAX_JSON_DEPTH = 32  # nested objects and arrays in attributes, secrets and tokens
MAX_YAML_NODES = 50_000  # nodes after expanding aliases
MAX_YAML_EXPANDED_BYTES = 1024 * 1024  # scalar text after expanding aliases
MAX_NUMBER_CHARS = 100  # an unquoted number literal (Python refuses > 4300 digits)
MAX_QUOTED_CHARS = 64  # a user value quoted in an error message
MAX_REPLY_BYTES = 4 * 1024 * 1024  # one backend reply (the driver's gRPC limit)
STALE_WAIT_SECONDS = 3.0  # a republish's wait for a failing backend with last good content

_NUMBER = re.compile(r"[-+]?(?:\.?[0-9]|0[xob])")
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_JSON_BRACKET = re.compile(r"[\[\]{}]")
if TYPE_CHECKING:
    import yaml


def quote(value: object) -> str:
    """repr() of a user value, shortened for an error message."""
    text = repr(value)
    if len(text) <= MAX_QUOTED_CHARS:
        return text
    return f"{text[: MAX_QUOTED_CHARS - 12]}…({len(text)} chars)"


def check_size(text: str, what: str, limit: int, fix: str) -> None:
    if len(text) * 4 <= limit:
        return  # even 4 UTF-8 bytes a character fit: no need to encode (the common case)
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > limit:
        raise InvalidArgument(f"{what} is {size} bytes, more than the limit of {limit}; {fix}")


def json_skeleton(text: str) -> str:
    """A JSON text with its strings emptied: what is left nests and separates."""
    return _JSON_STRING.sub('""', text)


def json_nested_deeper(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON text nests deeper than `limit`: asked before a decoder sees it, since
    Python's json recurses and its own bound (the interpreter's recursion limit) is not
    ours to answer with. Linear, and free when the text has too few brackets to nest that
    deep."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for bracket in _JSON_BRACKET.findall(json_skeleton(text)):
        depth += 1 if bracket in "[{" else -1
        if depth > limit:
            return True
    return False


def yaml_events(text: str) -> Iterator[yaml.Event]:
    """libyaml's events of `text`, and when libyaml refuses the text, the events it
    read before the place it refused, then its refusal.

    The events before a refusal are the document's: the scanner stopped at the refusal's
    mark, so the parser decided every earlier event without looking past it. Parsing
    the text up to that mark gives them again, and a bound breached there is ours to
    word. At most 3 passes, each over a shorter prefix, so a refusal costs at most 3
    parses of the text (one, for a document libyaml accepts)."""
    import yaml  # with the first SPC: an idle daemon does not need it

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    refusal: yaml.YAMLError | None = None
    end, emitted = len(text), 0
    for _ in range(3):
        seen = 0
        try:
            for event in yaml.parse(text[:end] if end < len(text) else text, Loader=loader):
                seen += 1
                if seen > emitted:
                    emitted = seen
                    yield event
            break
        except yaml.YAMLError as exc:
            refusal = refusal or exc
            mark = getattr(exc, "problem_mark", None)
            if mark is None or not 0 < mark.index < end:
                break
            end = mark.index
    if refusal is not None:
        raise refusal


def check_yaml(text: str, what: str, *, unique_keys: bool = False, expansion: bool = True) -> None:
    """Refuse YAML too big, too deep or expanding too much, before any loader sees it.
    With `unique_keys`, a key repeated in one mapping is refused too (last-wins would
    silently drop the first value). `expansion=False` leaves alias expansion to a decoder
    that bounds it itself (yamlv3 applies yaml.v3's own rule, with its words)."""
    import yaml  # with the first SPC: an idle daemon does not need it

    check_size(
        text, what, MAX_OBJECTS_BYTES, "split the objects across several SecretProviderClasses"
    )
    nodes = size = depth = items = 0
    anchors: dict[str, tuple[int, int]] = {}
    open_anchors: list[tuple[str | None, int, int]] = []
    keys: list[tuple[set[str], list[bool]] | None] = []  # per open collection

    def fail(problem: str, event: yaml.Event) -> InvalidArgument:
        line = event.start_mark.line + 1 if event.start_mark is not None else 0
        return InvalidArgument(f"{what} at line {line}: {problem}")

    def value_slot(event: yaml.Event, key: str | None) -> None:
        """Track key/value alternation in the enclosing mapping."""
        if not keys or keys[-1] is None:
            return
        seen, is_key = keys[-1]
        if is_key[0] and key is not None and unique_keys:
            if key in seen:
                raise fail(f"mapping key {quote(key)} is repeated; each key may appear once", event)
            seen.add(key)
        is_key[0] = not is_key[0]

    try:
        for event in yaml_events(text):
            top_level = depth == 1  # an item of the root list (if the root is a list)
            if isinstance(event, yaml.ScalarEvent):
                value_slot(event, event.value)
                nodes, size = nodes + 1, size + len(event.value)
                if (
                    not event.style
                    and len(event.value) > MAX_NUMBER_CHARS
                    and _NUMBER.match(event.value)
                ):
                    raise fail(
                        f"a number literal of {len(event.value)} characters, more "
                        f"than {MAX_NUMBER_CHARS}; quote it if it is text",
                        event,
                    )
                if event.anchor:
                    anchors[event.anchor] = (1, len(event.value))
            elif isinstance(event, yaml.AliasEvent):
                value_slot(event, None)
                more_nodes, more_size = anchors.get(event.anchor or "", (1, 0))
                nodes, size = nodes + more_nodes, size + more_size
            elif isinstance(event, yaml.CollectionStartEvent):
                value_slot(event, None)
                depth, nodes = depth + 1, nodes + 1
                if depth > MAX_YAML_DEPTH:
                    raise fail(f"nested deeper than {MAX_YAML_DEPTH} levels", event)
                open_anchors.append((event.anchor, nodes - 1, size))
                keys.append((set(), [True]) if isinstance(event, yaml.MappingStartEvent) else None)
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
                keys.pop()
                anchor, start_nodes, start_size = open_anchors.pop()
                if anchor:
                    anchors[anchor] = (nodes - start_nodes, size - start_size)
            else:
                continue
            if top_level and not isinstance(event, yaml.CollectionEndEvent):
                items += 1
                if items > MAX_OBJECTS:
                    raise fail(
                        f"more than {MAX_OBJECTS} objects; split them across several "
                        "SecretProviderClasses",
                        event,
                    )
            if not expansion:
                continue
            if nodes > MAX_YAML_NODES:
                raise fail(f"more than {MAX_YAML_NODES} nodes once aliases are expanded", event)
            if size > MAX_YAML_EXPANDED_BYTES:
                raise fail(
                    f"more than {MAX_YAML_EXPANDED_BYTES} bytes of text once aliases are expanded",
                    event,
                )
    except yaml.YAMLError:
        return  # not YAML: the dialect's own loader words the syntax error

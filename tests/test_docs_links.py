"""The documentation points at things that exist.

- Every relative link in README.md and docs/*.md names an existing file, and a `#anchor`
  into a Markdown file names one of its headings (GitHub's slug rules); the runbook URLs of
  the alerts and dashboard (`docs/troubleshooting.md#...`) too.
- Every `csiprovider <command> --flag` in the troubleshooting and migration docs exists in
  the CLI's parser (`csiprovider.cli.parser()`), in shell blocks and inline code alike; so
  do flags written alone in inline code (`--cache-ttl`), unless they belong to another
  program (FOREIGN_FLAGS), and flags given as container arguments in YAML blocks
  (`- --name=vault`), which are `csiprovider serve`'s.
"""

from __future__ import annotations

import argparse
import re
import shlex
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import pytest

from csiprovider import cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TROUBLESHOOTING = DOCS / "troubleshooting.md"
LINKED_DOCS = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", *DOCS.glob("*.md")])
COMMAND_DOCS = [
    TROUBLESHOOTING,
    DOCS / "migrate-from-vault-csi-provider.md",
    DOCS / "migrate-from-ascp.md",
]
# Alert runbook URLs point at these headings of docs/troubleshooting.md: renaming one
# breaks the links stored in alert history and dashboards.
RUNBOOK_HEADINGS = (
    "Pod stuck in ContainerCreating",
    "Finding the provider pod on the node",
    "The one Mount log line",
    "gRPC codes",
    "Stale content",
    "Rotation not happening",
    "Validate offline",
)
# Flags the docs name in inline code that belong to other programs (the Secrets Store CSI
# Driver, kubectl, helm) and that csiprovider does not have.
FOREIGN_FLAGS = frozenset(
    {
        "--enable-secret-rotation",
        "--max-call-recv-msg-size",
        "--additional-provider-volume-paths",
        "--reuse-values",
    }
)
SHELL_LANGUAGES = frozenset({"", "sh", "shell", "bash", "console", "zsh"})
YAML_LANGUAGES = frozenset({"yaml", "yml"})

FENCE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^\n`]*)\n"
    r"(?P<body>.*?)^(?P=indent)?[ \t]*(?P=fence)[ \t]*$",
    re.M | re.S,
)
CODE_SPAN = re.compile(r"(?<!`)(?P<ticks>`+)(?!`)(?P<code>.+?)(?<!`)(?P=ticks)(?!`)", re.S)
INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?(?P<target>[^)\s>]+)>?"
    r"(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)"
)
REFERENCE_LINK = re.compile(r"^[ ]{0,3}\[[^\]]+\]:\s*<?(?P<target>\S+?)>?(?:\s|$)", re.M)
HEADING = re.compile(r"^[ ]{0,3}(?P<level>#{1,6})[ \t]+(?P<text>.*?)[ \t]*#*[ \t]*$", re.M)
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"(?P<name>[^\"]+)\"", re.I)
RUNBOOK_URL = re.compile(r"docs/troubleshooting\.md#(?P<anchor>[\w-]+)")
PLACEHOLDER = re.compile(r"<[A-Za-z][\w./:*-]*>")
YAML_ARG = re.compile(r"^\s*(?:-|value:)\s+[\"']?(?P<flag>-{1,2}[A-Za-z][\w-]*)", re.M)
SEPARATORS = frozenset(
    {"|", "||", "&", "&&", ";", ";;", "(", ")", "<", ">", ">>", ">&", "<<", "|&"}
)
COMMAND_PREFIXES = frozenset({"--", "sudo", "exec", "time", "then", "do", "!"})


# -- Markdown -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """A fenced code block: its info string's first word and its text."""

    language: str
    body: str


def split_markdown(text: str) -> tuple[list[Block], list[str], str]:
    """(fenced blocks, inline code spans, the prose with both removed)."""
    blocks = [
        Block((m["info"].split() or [""])[0].lower(), m["body"]) for m in FENCE.finditer(text)
    ]
    prose = FENCE.sub("\n", text)
    spans = [m["code"] for m in CODE_SPAN.finditer(prose)]
    return blocks, spans, CODE_SPAN.sub(" ", prose)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text, lower-cased, without anything but
    letters, digits, `_`, `-` and spaces, every space a `-`."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images: text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("`", "")
    text = re.sub(r"(\*\*|__|\*|~~)", "", text)
    kept = "".join(c for c in text.lower() if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor of a Markdown document: headings outside code blocks (a repeated slug
    gets -1, -2, ... as on GitHub) and explicit HTML anchors."""
    _, _, prose = split_markdown(text)
    found: set[str] = set()
    seen: dict[str, int] = {}
    for match in HEADING.finditer(FENCE.sub("\n", text)):
        base = slug(match["text"])
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    found.update(m["name"] for m in HTML_ANCHOR.finditer(prose))
    return found


def links(text: str) -> list[str]:
    """Link targets outside code: inline links, images and reference definitions."""
    _, _, prose = split_markdown(text)
    return [
        m["target"] for pattern in (INLINE_LINK, REFERENCE_LINK) for m in pattern.finditer(prose)
    ]


def is_external(target: str) -> bool:
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", target)) or target.startswith("//")


def link_problems(doc: Path, text: str | None = None) -> list[str]:
    """Broken relative links of a document (its text: `text`, else the file's)."""
    text = doc.read_text() if text is None else text
    problems = []
    for target in links(text):
        if is_external(target):
            continue
        path_part, _, anchor = target.partition("#")
        path_part = unquote(path_part.split("?", 1)[0])
        if not path_part:
            resolved = doc
        elif path_part.startswith("/"):
            resolved = ROOT / path_part.lstrip("/")
        else:
            resolved = (doc.parent / path_part).resolve()
        where = f"{doc.relative_to(ROOT)}: link {target!r}"
        if resolved != doc and not resolved.exists():
            problems.append(f"{where}: {path_part} does not exist")
            continue
        if anchor and resolved.suffix == ".md":
            target_text = text if resolved == doc else resolved.read_text()
            if anchor not in anchors(target_text):
                problems.append(
                    f"{where}: no heading with anchor #{anchor} in {resolved.relative_to(ROOT)}"
                )
    return problems


# -- the CLI ------------------------------------------------------------------------------


@cache
def cli_options() -> Mapping[str, frozenset[str]]:
    """Option strings of each subcommand, and of the top-level parser under ""."""
    top = cli.parser()
    options = {"": frozenset(s for a in top._actions for s in a.option_strings)}
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                options[name] = frozenset(s for a in sub._actions for s in a.option_strings)
    return options


def all_options() -> frozenset[str]:
    return frozenset().union(*cli_options().values())


def flag_name(token: str) -> str:
    return token.strip("[]").split("=", 1)[0]


def is_flag(token: str) -> bool:
    return bool(re.fullmatch(r"-{1,2}[A-Za-z][\w-]*", flag_name(token)))


def shell_words(line: str) -> list[str]:
    """Shell tokens of one command line, with quotes removed and `|`, `;`, `&&`, `<`...
    as tokens of their own; placeholders such as `<pod>` are words, not redirections."""
    line = PLACEHOLDER.sub("PLACEHOLDER", line)
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        return list(lexer)
    except ValueError:  # an unbalanced quote: plain words are good enough
        return line.split()


def command_lines(code: str) -> Iterator[str]:
    """Lines of a shell text, continuation backslashes joined."""
    yield from re.sub(r"\\\n", " ", code).splitlines()


def csiprovider_commands(code: str) -> Iterator[tuple[str, list[str]]]:
    """(subcommand, its arguments) of every `csiprovider ...` invocation in shell text:
    where `csiprovider` (or a path ending in `bin/csiprovider`) starts a command, after a
    separator, or after `--`/`sudo`/`exec`."""
    for line in command_lines(code):
        words = shell_words(line)
        starts = True
        for i, word in enumerate(words):
            if word in SEPARATORS:
                starts = True
                continue
            invoked = word == "csiprovider" or word.endswith("bin/csiprovider")
            if starts and invoked and i + 1 < len(words):
                args: list[str] = []
                for arg in words[i + 1 :]:
                    if arg in SEPARATORS:
                        break
                    args.append(arg)
                if args and not args[0].startswith("-"):
                    yield args[0], args[1:]
                else:
                    yield "", args
            starts = word in COMMAND_PREFIXES or bool(re.fullmatch(r"\w+=\S*", word))


def command_problems(subcommand: str, args: list[str]) -> list[str]:
    options = cli_options()
    shown = f"csiprovider {subcommand}".strip()
    if subcommand not in options:
        names = ", ".join(sorted(n for n in options if n))
        return [f"`{shown}`: no such command (commands: {names})"]
    return [
        f"`{shown} {flag_name(arg)}`: no such flag"
        for arg in args
        if is_flag(arg) and flag_name(arg) not in options[subcommand]
    ]


def flag_problems(text: str) -> list[str]:
    """Every flag of a csiprovider command that the parser does not know, in a Markdown
    text: shell blocks, inline code, flags alone in inline code, YAML container args."""
    blocks, spans, _ = split_markdown(text)
    problems: list[str] = []
    for code in [b.body for b in blocks if b.language in SHELL_LANGUAGES] + spans:
        for subcommand, args in csiprovider_commands(code):
            problems += command_problems(subcommand, args)
    known = all_options() | FOREIGN_FLAGS
    for span in spans:
        words = shell_words(span)
        if words and is_flag(words[0]):
            problems += [
                f"`{flag_name(w)}` (in `{span}`): no csiprovider command has "
                "this flag (another program's? add it to FOREIGN_FLAGS)"
                for w in words
                if is_flag(w) and flag_name(w) not in known
            ]
    serve = cli_options()["serve"]
    for block in blocks:
        if block.language in YAML_LANGUAGES:
            problems += [
                f"`{m['flag']}` (YAML argument): not a `csiprovider serve` flag"
                for m in YAML_ARG.finditer(block.body)
                if m["flag"] not in serve
            ]
    return problems


# -- the tests ----------------------------------------------------------------------------


@pytest.mark.parametrize("doc", LINKED_DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path) -> None:
    assert link_problems(doc) == []


def test_documented_make_targets_exist() -> None:
    """`make <target>` in the README and CONTRIBUTING.md is a target of the Makefile."""
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.M))
    for doc in (ROOT / "README.md", ROOT / "CONTRIBUTING.md"):
        named = set(re.findall(r"`make ([a-z][a-z-]*)", doc.read_text()))
        assert named, doc
        assert named <= targets, (doc.name, sorted(named - targets))


def test_runbook_headings_exist() -> None:
    headings = anchors(TROUBLESHOOTING.read_text())
    missing = [h for h in RUNBOOK_HEADINGS if slug(h) not in headings]
    assert missing == [], f"docs/troubleshooting.md lost headings: {missing}"


def test_runbook_urls_name_troubleshooting_headings() -> None:
    """Alerts, dashboards and docs link `docs/troubleshooting.md#<anchor>` as text."""
    headings = anchors(TROUBLESHOOTING.read_text())
    sources = [
        p
        for p in [*(ROOT / "charts").rglob("*"), *LINKED_DOCS]
        if p.is_file() and p.suffix in {".yaml", ".yml", ".json", ".md", ".tpl", ".txt"}
    ]
    used = {
        (str(p.relative_to(ROOT)), m["anchor"])
        for p in sources
        for m in RUNBOOK_URL.finditer(p.read_text(errors="replace"))
    }
    assert used, "no runbook URL found: the pattern or the paths are stale"
    assert sorted(u for u in used if u[1] not in headings) == []


@pytest.mark.parametrize("doc", COMMAND_DOCS, ids=lambda p: p.name)
def test_csiprovider_flags_exist(doc: Path) -> None:
    assert flag_problems(doc.read_text()) == []


def test_every_command_doc_names_commands() -> None:
    """The extraction finds what these docs show, so the test above checks something."""
    for doc in COMMAND_DOCS:
        blocks, spans, _ = split_markdown(doc.read_text())
        found = [c for code in [b.body for b in blocks] + spans for c in csiprovider_commands(code)]
        assert any(sub == "validate" for sub, _ in found), doc.name


# -- the checkers themselves --------------------------------------------------------------


def test_a_flag_that_does_not_exist_fails() -> None:
    doc = """
Run `csiprovider serve --name vault --no-such-flag=1`, then:

```sh
kubectl exec -n csiprovider <pod> -- csiprovider mount --spc spc.yaml \\
  --target /tmp/mnt --pod-namespace <namespace> --bogus-mount-flag
csiprovider validate --name x spc.yaml | grep ok
csiprovider frobnicate --help
```

Set `--rotation-pol-interval` or `--write-mode provider`.

```yaml
args:
  - --name=aws
  - --not-a-serve-flag=1
```
"""
    assert flag_problems(doc) == [
        "`csiprovider mount --bogus-mount-flag`: no such flag",
        "`csiprovider frobnicate`: no such command (commands: encrypt, mount, refresh, serve, "
        "validate, version)",
        "`csiprovider serve --no-such-flag`: no such flag",
        "`--rotation-pol-interval` (in `--rotation-pol-interval`): no csiprovider command "
        "has this flag (another program's? add it to FOREIGN_FLAGS)",
        "`--not-a-serve-flag` (YAML argument): not a `csiprovider serve` flag",
    ]


def test_what_is_not_a_csiprovider_command_is_left_alone() -> None:
    doc = """
`kubectl get pod -n csiprovider -o wide`, `"csiprovider started"`, `csiprovider_mounts_total`,
`helm upgrade csiprovider charts/csiprovider --reuse-values --set names={vault}`,
`csiprovider: error: argument --foo: bad`, `--max-call-recv-msg-size`.

```text
csiprovider started providers=... --whatever
```

```sh
kubectl rollout status daemonset/csiprovider -n csiprovider   # csiprovider serve --nope
.venv/bin/csiprovider serve --name vault -name=aws --log-level=debug
```
"""
    assert flag_problems(doc) == []


def test_slugs_follow_github() -> None:
    assert slug("Pod stuck in ContainerCreating") == "pod-stuck-in-containercreating"
    assert slug("gRPC codes") == "grpc-codes"
    assert slug("`csiprovider validate`") == "csiprovider-validate"
    assert (
        slug("Running vault-helm's chart with the csiprovider image")
        == "running-vault-helms-chart-with-the-csiprovider-image"
    )
    assert slug("INVALID_ARGUMENT") == "invalid_argument"
    assert slug("A [link](x.md) and **bold**, v1.2") == "a-link-and-bold-v12"
    text = '# A\n\n```sh\n# not a heading\n```\n\n## A\n\n<a id="c"></a>\n'
    assert anchors(text) == {"a", "a-1", "c"}


def test_broken_links_are_reported() -> None:
    text = (
        "# Here\n\n[ok](metrics.md#the-alerts) [gone](no-such-file.md) "
        "[bad](#no-such-heading) [self](#here) [wrong](metrics.md#nope) "
        "[web](https://example.com/x.md) `[code](nowhere.md)`\n"
    )
    assert link_problems(DOCS / "example.md", text) == [
        "docs/example.md: link 'no-such-file.md': no-such-file.md does not exist",
        "docs/example.md: link '#no-such-heading': no heading with anchor "
        "#no-such-heading in docs/example.md",
        "docs/example.md: link 'metrics.md#nope': no heading with anchor #nope in docs/metrics.md",
    ]

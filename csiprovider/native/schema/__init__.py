"""The JSON Schema of the native `objects` list, shipped in the package (editors and CI
can use native-objects.schema.json directly); errors carry their exact path."""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match


@cache
def validator() -> Draft202012Validator:
    schema = json.loads(files(__package__).joinpath("native-objects.schema.json").read_text())
    return Draft202012Validator(schema)


def path_of(error: ValidationError) -> str:
    """`objects[3].jmesPath` style."""
    text = "objects"
    for part in error.absolute_path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def errors(items: Any) -> list[str]:
    """Every problem, each as `<path>: <message>`, most relevant first."""
    found = sorted(validator().iter_errors(items), key=lambda e: list(e.absolute_path))
    return [f"{path_of(e)}: {e.message}" for e in found]


def first_error(items: Any) -> str | None:
    error = best_match(validator().iter_errors(items))
    return None if error is None else f"{path_of(error)}: {error.message}"

"""Validate a YAML document against a pydantic model, reporting file, line and field.

Runbooks and the shared rule catalogue are edited by people; any error names where it is
and what would be valid, never a traceback.
"""

from __future__ import annotations

from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
# libyaml's loader where PyYAML was built with it: several times faster than pure Python
SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class RunbookError(Exception):
    """Invalid runbook or rule files, phrased with file, line, field and fix."""


class FieldError(ValueError):
    """A validation error that knows which nested field it is about.

    Validators on a whole model would otherwise be reported at the model's own line;
    ``loc`` (relative to the model) lets the linter point at the offending key.
    """

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


def line_index(node: yaml.Node, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    """Map each key path in a composed YAML document to its 1-based line."""
    index = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, key.value)
            index[child] = key.start_mark.line + 1
            index.update({k: v for k, v in line_index(value, child).items() if k != child})
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            index.update(line_index(item, (*path, i)))
    return index


def _error_line(index: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int:
    for cut in range(len(loc), -1, -1):
        line = index.get(tuple(loc[:cut]))
        if line is not None:
            return line
    return 1


def parse_yaml_model(text: str, source: str, model: type[M], shape: str) -> M:
    """``text`` as ``model``, or RunbookError listing every problem.

    ``shape`` says what the document should be when it is not a mapping at all.
    """
    try:
        data = yaml.load(text, Loader=SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{mark.line + 1}:" if mark is not None else ""
        raise RunbookError(f"{source}:{where} not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise RunbookError(f"{source}:1: {shape}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # lines are looked up only for an invalid file: composing costs as much as loading
        node = yaml.compose(text, Loader=SafeLoader)
        index = line_index(node) if node is not None else {}
        lines = []
        for error in exc.errors():
            loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and "[" in p))
            cause = (error.get("ctx") or {}).get("error")
            if isinstance(cause, FieldError):
                loc = (*loc, *cause.loc)
            field_path = ".".join(str(p) for p in loc) or "(top level)"
            line = _error_line(index, loc)
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key; remove it or fix its spelling"
            elif error["type"] == "missing":
                message = "required key is missing; add it"
            lines.append(f"{source}:{line}: {field_path}: {message}")
        raise RunbookError("\n".join(lines)) from exc

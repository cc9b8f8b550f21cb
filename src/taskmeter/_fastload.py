"""Reading a task file in one pass of pydantic-core, without a Python call per task.

:class:`~taskmeter.task.Task` has two validators written in Python: one gives a
record without ``pid`` the value ``None`` (not the reader's pid), one accepts
LensKit's subtasks given as a mapping.  Each is called for every task, and in
JSON mode pydantic hands each the task's whole subtree converted to Python
objects first, so that a file of 100,000 tasks is converted and validated
level by level.

The validator here is built from Task's own core schema with those two steps
taken out (and ``pid`` absent read as ``None`` by default): a file whose
subtasks are lists is validated straight from its JSON into Task objects.  The
``pid`` left out of a record is marked as set afterwards (see
:func:`mark_pid_set`), as the Python validator's ``None`` is.  A file this
validator refuses (a mapping of subtasks, an invalid file) goes through Task's
own validation, which gives the same result or the same error.

If Task's schema ever changes so that the two steps are not found where
expected, :func:`file_validator` returns ``None`` and every file takes the
general path.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic_core import SchemaValidator

_built = False
_validator: SchemaValidator | None = None
_build_lock = threading.Lock()


def file_validator() -> SchemaValidator | None:
    """The validator for task files (built on first use), or ``None`` if it cannot be built."""
    global _built, _validator
    if not _built:
        with _build_lock:
            if not _built:
                _validator = _build()
                _built = True
    return _validator


def _build() -> SchemaValidator | None:
    from pydantic_core import SchemaValidator

    from . import task as task_module

    schema = _without_python_steps(
        task_module.Task.__pydantic_core_schema__,
        task_module.Task._record_without_pid,
        task_module._dict_extract_values,
    )
    if schema is None:
        return None
    # pydantic-core builds a model schema of a complete class from that class's own
    # validator (the one with the Python steps): the class is marked incomplete
    # for the moment this validator is built, so that it is built from ``schema``.
    cls = task_module.Task
    complete: bool = cls.__dict__.get("__pydantic_complete__", False)
    cls.__pydantic_complete__ = False
    try:
        return SchemaValidator(schema)
    finally:
        cls.__pydantic_complete__ = complete


def _without_python_steps(schema: Any, record_step: Any, subtasks_step: Any) -> Any:
    """A copy of Task's core schema without its two Python validators, or ``None``.

    The schema must be ``definitions`` holding one ``model`` of Task whose
    ``schema`` is the ``function-before`` of ``record_step`` around the fields,
    whose ``subtasks`` field is the ``function-before`` of ``subtasks_step``
    and whose ``pid`` field has a default factory; anything else is ``None``.
    """
    from .task import Task

    if not isinstance(schema, dict) or schema.get("type") != "definitions":
        return None
    definitions = list(schema.get("definitions", ()))
    models = [
        index
        for index, item in enumerate(definitions)
        if item.get("type") == "model" and item.get("cls") is Task
    ]
    if len(models) != 1:
        return None
    model = dict(definitions[models[0]])
    if model.get("post_init") is not None:
        return None
    before = model.get("schema", {})
    if before.get("type") != "function-before" or not _calls(before, record_step):
        return None
    fields_schema = dict(before["schema"])
    if fields_schema.get("type") != "model-fields":
        return None
    fields = dict(fields_schema["fields"])
    subtasks = dict(fields.get("subtasks", {}))
    pid = dict(fields.get("pid", {}))
    if not subtasks or not pid:
        return None
    found = _replace_before(subtasks, subtasks_step)
    if found is None:
        return None
    fields["subtasks"] = found
    pid_default = dict(pid.get("schema", {}))
    if pid_default.get("type") != "default" or "default_factory" not in pid_default:
        return None
    del pid_default["default_factory"]
    pid_default.pop("default_factory_takes_data", None)
    pid_default["default"] = None
    pid["schema"] = pid_default
    fields["pid"] = pid
    fields_schema["fields"] = fields
    model["schema"] = fields_schema
    definitions[models[0]] = model
    return {**schema, "definitions": definitions}


def _calls(schema: dict[str, Any], step: Any) -> bool:
    function = schema.get("function", {})
    return isinstance(function, dict) and function.get("function") == step


def _replace_before(node: dict[str, Any], step: Any) -> dict[str, Any] | None:
    """``node`` (a field's schema) with the ``function-before`` of ``step`` in it replaced
    by the schema it wraps; ``None`` if there is not exactly one."""
    replaced = 0

    def walk(item: Any) -> Any:
        nonlocal replaced
        if isinstance(item, dict):
            if item.get("type") == "function-before" and _calls(item, step):
                replaced += 1
                return walk(item["schema"])
            return {key: walk(value) for key, value in item.items()}
        if isinstance(item, list):
            return [walk(value) for value in item]
        return item

    result = walk(node)
    return result if replaced == 1 else None

"""Shared, read-only ``__pydantic_fields_set__`` values for many records of one model.

A pydantic model keeps, per instance, the set of the fields that were set
explicitly.  A root task with 100k subtasks keeps 100k such sets, nearly all
equal (``{"label", "parent_id", "status", ...}``): each one is a garbage-
collected container of some 700 bytes, and the collector walks every one of
them on each full collection, which made the cost per subtask grow with the
number of subtasks.  :class:`FieldSets` interns the few sets a task goes
through (created, started, finished) so that records share them.

A shared set is a :class:`SharedFieldSet`: a ``set`` (pydantic-core requires
one) whose mutating methods raise.  The model thaws it, replacing it with a
private copy, before anything may change it (``__setattr__``, copies,
``model_fields_set``), so sharing is never visible.

:func:`mark` and :func:`thaw` replace a model's set: the caller makes sure
that no two of them run at once for one model (else one thread could
install a set that lacks the other's fields).  ``Task`` holds its lock.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NoReturn

_set_slot = object.__setattr__


class SharedFieldSet(set[str]):
    """A field set shared by many records; read-only (thaw it before a change).

    :attr:`following` maps each step of its :class:`FieldSets` to the shared
    union, for callers on a hot path (see :meth:`FieldSets.mark`).
    """

    __slots__ = ("following",)

    def __init__(self, names: frozenset[str]) -> None:
        super().__init__(names)
        self.following: dict[frozenset[str], SharedFieldSet] = {}

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("this field set is shared by many records; thaw it before changing it")

    add = discard = remove = pop = clear = update = _refuse
    difference_update = intersection_update = symmetric_difference_update = _refuse
    __ior__ = __iand__ = __isub__ = __ixor__ = _refuse


class FieldSets:
    """The shared sets reachable from ``initial`` by adding any of ``steps``.

    Args:
        initial: The field sets a new record may start with.
        steps: The groups of fields that :func:`mark` may add.
    """

    def __init__(self, initial: Iterable[frozenset[str]], steps: Iterable[frozenset[str]]) -> None:
        steps = tuple(steps)
        self._shared: dict[frozenset[str], SharedFieldSet] = {}
        pending = [frozenset(names) for names in initial]
        while pending:
            names = pending.pop()
            if names in self._shared:
                continue
            self._shared[names] = SharedFieldSet(names)
            pending.extend(names | step for step in steps)
        for names, shared in self._shared.items():
            for step in steps:
                shared.following[step] = self._shared[names | step]

    def shared(self, names: frozenset[str]) -> SharedFieldSet:
        """The shared set equal to ``names`` (one of those built from ``initial``)."""
        return self._shared[names]


def mark(model: Any, step: frozenset[str]) -> None:
    """Add the fields of ``step`` to ``model``'s fields set: if that set is shared,
    by replacing it with the shared union (one of :class:`FieldSets`'s steps)."""
    current = model.__pydantic_fields_set__
    if type(current) is SharedFieldSet:
        following: set[str] | None = current.following.get(step)
        if following is None:  # not a step of its FieldSets: go private
            following = set(current)
            following.update(step)
        _set_slot(model, "__pydantic_fields_set__", following)
    else:
        current.update(step)


def thaw(model: Any) -> set[str]:
    """``model``'s fields set, made a private, mutable copy first if it is shared."""
    current: set[str] = model.__pydantic_fields_set__
    if type(current) is SharedFieldSet:
        current = set(current)
        _set_slot(model, "__pydantic_fields_set__", current)
    return current

"""A stand-in for ``lsst.daf.base.PropertySet``, built from its documented Python API.

lsst.daf.base is a C++ package with pybind11 bindings that is not on PyPI, so
the timer and Measurement tests use this class in its place.  What they rely
on behaves as the real one does:

* values are typed; ``addLongLong`` takes integers only (pybind11 raises
  ``TypeError`` for a float or a string, which is why lsst.utils falls back
  to ``add``), and ``add`` of a value of another type than the name already
  holds raises ``TypeError`` (lsst.pex.exceptions.TypeError, a ``TypeError``);
* names are hierarchical: ``"isr.runStartCpuTime"`` is ``runStartCpuTime``
  in the nested PropertySet ``isr``; ``set(name, PropertySet)`` nests one;
* ``set`` (and item assignment) replaces every value of a name, ``add``
  appends one; ``getArray`` gives all of them, ``getScalar`` (and item
  lookup) the last one;
* ``names``/``paramNames`` list the top level unless ``topLevelOnly=False``,
  which lists full dotted names (``paramNames`` leaves nested PropertySets
  out, ``names`` keeps them).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


class PropertySet:
    """Hierarchical, typed, multi-valued metadata, as ``lsst.daf.base.PropertySet``."""

    def __init__(self) -> None:
        self._values: dict[str, list[Any] | PropertySet] = {}

    # ------------------------------------------------------------ hierarchy

    def _parent(self, name: str, create: bool) -> tuple[PropertySet | None, str]:
        head, dot, tail = name.partition(".")
        if not dot:
            return self, name
        child = self._values.get(head)
        if child is None and create:
            child = self._values[head] = PropertySet()
        if not isinstance(child, PropertySet):
            if child is not None and create:
                raise TypeError(f"{head!r} holds values, not a PropertySet")
            return None, tail
        return child._parent(tail, create)

    # ------------------------------------------------------------ writing

    def set(self, name: str, value: Any) -> None:
        """Replace every value of ``name`` by ``value`` (a list sets several)."""
        parent, leaf = self._parent(name, create=True)
        assert parent is not None
        if isinstance(value, PropertySet):
            parent._values[leaf] = value
        else:
            parent._values[leaf] = list(value) if isinstance(value, list) else [value]

    def add(self, name: str, value: Any) -> None:
        """Append ``value`` to ``name``; a value of another type than those held is refused."""
        parent, leaf = self._parent(name, create=True)
        assert parent is not None
        held = parent._values.get(leaf)
        if held is None:
            parent._values[leaf] = [value]
            return
        if isinstance(held, PropertySet) or type(held[0]) is not type(value):
            raise TypeError(f"{name!r} holds {type(held[0]).__name__}, cannot add {value!r}")
        held.append(value)

    def addLongLong(self, name: str, value: Any) -> None:
        """``add`` for a 64-bit integer; anything else is a ``TypeError``, as from pybind11."""
        if type(value) is not int:
            raise TypeError(f"addLongLong(): incompatible function arguments: {value!r}")
        self.add(name, value)

    def __setitem__(self, name: str, value: Any) -> None:
        self.set(name, value)

    # ------------------------------------------------------------ reading

    def _held(self, name: str) -> list[Any] | PropertySet:
        parent, leaf = self._parent(name, create=False)
        if parent is None or leaf not in parent._values:
            raise KeyError(name)
        return parent._values[leaf]

    def exists(self, name: str) -> bool:
        """Whether ``name`` holds values or a nested PropertySet."""
        try:
            self._held(name)
        except KeyError:
            return False
        return True

    __contains__ = exists

    def getArray(self, name: str) -> list[Any]:
        """Every value of ``name``, oldest first."""
        held = self._held(name)
        return held if isinstance(held, PropertySet) else list(held)  # type: ignore[return-value]

    def getScalar(self, name: str) -> Any:
        """The last value of ``name``."""
        held = self._held(name)
        return held if isinstance(held, PropertySet) else held[-1]

    __getitem__ = getScalar

    def _walk(self, prefix: str) -> Iterator[tuple[str, bool]]:
        for key, held in self._values.items():
            nested = isinstance(held, PropertySet)
            yield prefix + key, nested
            if nested:
                yield from held._walk(f"{prefix}{key}.")  # type: ignore[union-attr]

    def names(self, topLevelOnly: bool = True) -> list[str]:
        """Names of values and nested PropertySets (full dotted names unless ``topLevelOnly``)."""
        if topLevelOnly:
            return list(self._values)
        return [name for name, _ in self._walk("")]

    def paramNames(self, topLevelOnly: bool = True) -> list[str]:
        """Names of values only, not of nested PropertySets."""
        if topLevelOnly:
            return [k for k, v in self._values.items() if not isinstance(v, PropertySet)]
        return [name for name, nested in self._walk("") if not nested]

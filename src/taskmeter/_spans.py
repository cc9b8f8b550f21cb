"""Fast, read-only access to the attributes of SDK spans, for span processors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["raw_attributes"]


def raw_attributes(span: ReadableSpan) -> Mapping[str, Any] | None:
    """The span's attributes, as the plain dict inside the SDK's span where there is one.

    ``ReadableSpan.attributes`` wraps the SDK's ``BoundedAttributes`` in a
    ``MappingProxyType``, whose ``get`` goes through ``__getitem__`` and a
    ``KeyError`` for every missing key: a microsecond on each span that lacks
    the key looked for.  Other spans (and other SDK versions) use the public
    property.  The mapping must not be modified.
    """
    bounded = getattr(span, "_attributes", None)
    raw = getattr(bounded, "_dict", None)
    if isinstance(raw, dict):
        return raw
    if isinstance(bounded, dict):  # spans built with a plain dict (enriched copies)
        return bounded
    return span.attributes

"""The error raised when a source the user asked for by name cannot work."""

from __future__ import annotations


class ProbeUnavailableError(RuntimeError):
    """A measurement source asked for explicitly is missing or unreadable on this machine.

    Raised by a probe constructed with ``required=True`` and by
    :func:`taskmeter.probes.default_probes` for sources named in its
    ``energy`` argument.  The message names what is missing and how to fix it.
    Sources that are merely *available by default* never raise: their figures
    are left ``None`` and the reason is logged once at debug level.
    """

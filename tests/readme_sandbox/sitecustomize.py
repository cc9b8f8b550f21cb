"""Loaded as ``sitecustomize`` into the README's examples when the tests run them
(``tests/test_readme_blocks.py`` puts this directory first on ``PYTHONPATH``).

A connection from Python to any host but this machine's loopback is refused with
``ENETUNREACH`` and its host is appended to the file named by ``README_NETWORK_LOG``, so a
test can tell an example that needs the network. Unix sockets (multiprocessing's) pass.
"""

from __future__ import annotations

import errno
import os
import socket
from typing import Any

_LOG = os.environ.get("README_NETWORK_LOG", "")
_LOOPBACK_NAMES = {"localhost", "::1", "0.0.0.0", ""}


def _is_local(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    name = str(host).lower()
    return name in _LOOPBACK_NAMES or name.startswith("127.") or name.endswith(".localhost")


def _refuse(host: object) -> None:
    if _LOG:
        with open(_LOG, "a", encoding="utf-8") as log:
            log.write(f"{host}\n")
    raise OSError(errno.ENETUNREACH, f"README examples run without network: {host}")


_getaddrinfo = socket.getaddrinfo
_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if host is not None and not _is_local(host):
        _refuse(host)
    return _getaddrinfo(host, *args, **kwargs)


def _guarded_connect(self: socket.socket, address: Any) -> None:
    if isinstance(address, tuple) and not _is_local(address[0]):
        _refuse(address[0])
    _connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    if isinstance(address, tuple) and not _is_local(address[0]):
        _refuse(address[0])
    return _connect_ex(self, address)


socket.getaddrinfo = _guarded_getaddrinfo
socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]

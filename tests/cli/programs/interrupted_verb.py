"""Run ``taskmeter ARGS`` in this process, pausing it at one call until a SIGINT.

Usage: ``interrupted_verb.py MODULE:FUNCTION READY ARGS...``.  When the verb
calls ``MODULE.FUNCTION`` (for ``importlib:import_module``, with the name of a
module of ``taskmeter.cli``), the file READY appears and the call sleeps; the
test then sends SIGINT, whose ``KeyboardInterrupt`` ends the sleep (after at
most 20 s the call goes on).
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from taskmeter.cli import main

WAIT_S = 20.0
RENAME = os.replace
"""Kept before any pause is put in: ``os:replace`` may be the call paused."""


def announce(ready: str) -> None:
    with open(ready + ".tmp", "w") as handle:
        handle.write(str(os.getpid()))
    RENAME(ready + ".tmp", ready)


def paused(function: Callable[..., Any], ready: str) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        is_verb_import = function is importlib.import_module and str(args[0]).startswith(
            "taskmeter.cli."
        )
        if function is not importlib.import_module or is_verb_import:
            announce(ready)
            time.sleep(WAIT_S)
        return function(*args, **kwargs)

    return wrapper


target, ready = sys.argv[1], sys.argv[2]
module_name, _, function_name = target.partition(":")
module = importlib.import_module(module_name)
setattr(module, function_name, paused(getattr(module, function_name), ready))
raise SystemExit(main(sys.argv[3:]))

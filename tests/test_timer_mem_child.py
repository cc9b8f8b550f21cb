"""``time_this(mem_child=True)`` counts the memory of child processes, checked against
children that hold a known number of bytes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from .helpers import MIB

# Run in a fresh interpreter: the peak RSS of waited-for children (RUSAGE_CHILDREN)
# only grows over a process's life, and a child exec'ed from a process inherits that
# process's peak, so in the test process earlier tests' children and its own large
# peak would hide the child's figure.
SCRIPT = textwrap.dedent(
    """
    import json, subprocess, sys
    from taskmeter import time_this

    HELD = int(sys.argv[1])
    CHILD = '''
    import mmap, os, sys
    def rss():
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    base = rss()
    block = mmap.mmap(-1, HELD, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    for offset in range(0, HELD, 4096):
        block[offset] = 1
    print(base, rss(), flush=True)
    sys.stdin.readline()  # hold the block until told
    '''.replace("HELD", str(HELD))

    def start_child():
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True,
        )
        base, holding = map(int, child.stdout.readline().split())
        return child, base, holding

    def stop(child):
        child.stdin.close()
        child.wait(timeout=30)

    out = {}
    # A child that holds its block and exits within the block: its peak counts.
    with time_this(mem_usage=True, mem_child=True, force_mem_usage=True) as ended:
        child, out["ended_base"], out["ended_holding"] = start_child()
        stop(child)
    # A child still holding its block when the block ends: its RSS counts.
    with time_this(mem_usage=True, mem_child=True, force_mem_usage=True) as held:
        child, out["held_base"], out["held_holding"] = start_child()
    stop(child)
    # The same without mem_child: this process's figures only.
    with time_this(mem_usage=True, mem_child=False, force_mem_usage=True) as own:
        child, _, _ = start_child()
    stop(child)
    for name, timer in (("ended", ended), ("held", held), ("own", own)):
        out[name] = {
            "current": timer.mem_current_usage,
            "delta": timer.mem_current_delta,
            "peak_delta": timer.mem_peak_delta,
        }
    print(json.dumps(out))
    """
)


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux's /proc")
def test_mem_child_counts_the_memory_children_hold_and_held() -> None:
    """With ``mem_child=True`` a child holding 160 MiB (plus its interpreter) shows in the
    current delta while it runs, and in the peak delta once it has exited and been
    waited for; without it, neither shows."""
    held_bytes = 160 * MIB
    ran = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(held_bytes)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    figures = json.loads(ran.stdout.splitlines()[-1])
    for name in ("ended", "held"):
        # The child's RSS grew by exactly the block it touched.
        holding = figures[f"{name}_holding"]
        assert holding - figures[f"{name}_base"] == pytest.approx(held_bytes, rel=0.02)

    ended, held, own = figures["ended"], figures["held"], figures["own"]
    # Peak of the child that exited: its own resident set at its largest.
    assert ended["peak_delta"] == pytest.approx(figures["ended_holding"], rel=0.05)
    assert abs(ended["delta"]) < 16 * MIB  # it is gone: nothing of it is current
    # The child still running at the end: its resident set now, in the delta and the total.
    assert held["delta"] == pytest.approx(figures["held_holding"], rel=0.05)
    assert held["current"] >= figures["held_holding"]
    # Without mem_child this process's own figures only.
    assert abs(own["delta"]) < 16 * MIB
    assert own["peak_delta"] < 16 * MIB
    assert own["current"] < held["current"] - 0.9 * held_bytes

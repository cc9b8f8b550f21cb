"""The HTML report in headless Chromium: every task is drawn, hovering shows figures,
the page renders fast with 5000 tasks, and its screenshot is not blank."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskmeter import Task
from taskmeter.formats import friendly_bytes, friendly_energy, friendly_seconds
from taskmeter.render import terminal_text
from taskmeter.report import render_html
from taskmeter.taskfile import save_task

from ..conftest import require_executable
from .runner import program, run_command, taskmeter
from .stopped import stopped_process
from .trees import GPU_LOST_IN_B, NO_GPU, WITH_SYSTEM, energy_siblings, make_tree

COLLECT_ROWS_JS = """
const report = window.taskmeterReport;
const viewport = document.getElementById('viewport');
const seen = new Set();
const step = Math.max(viewport.clientHeight - report.rowHeight, report.rowHeight);
const total = report.visibleCount() * report.rowHeight;
for (let top = 0; top <= total; top += step) {
  viewport.scrollTop = top;
  report.render();
  for (const row of viewport.querySelectorAll('.row')) {
    if (row.style.display !== 'none') seen.add(row.dataset.taskId);
  }
}
return Array.from(seen);
"""


def label_of(row: Any) -> str:
    """The label shown in a row (without its expand/collapse arrow)."""
    return str(row.find_element("css selector", ".text").text)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium driven by chromedriver (Debian's), no network, fresh profile."""
    chromium = require_executable("chromium", "chromium")
    chromedriver = require_executable("chromedriver", "chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="taskmeter-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,800",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    os.environ.setdefault("SE_AVOID_STATS", "true")
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_every_task_of_5000_is_in_the_page(browser: Any, tmp_path: Path) -> None:
    """A 5011-task file: small report, quick first render, and each task drawn when expanded."""
    root = make_tree()
    ids = {str(task.task_id) for _, task in root.walk()}
    source = tmp_path / "big.json"
    save_task(root, source)
    page = tmp_path / "big.html"
    result = taskmeter("report", str(source), "-o", str(page))
    assert result.returncode == 0, result.stderr
    assert page.stat().st_size < 1.5 * 1024 * 1024
    browser.get(page.as_uri())
    render_ms = browser.execute_script("return window.taskmeterReport.renderMs")
    assert render_ms < 1500
    assert browser.execute_script("return window.taskmeterReport.taskCount") == len(ids)
    # Only rows in view exist: the page does not build 5000 rows at once.
    assert len(browser.find_elements("css selector", ".row")) < 200
    browser.find_element("id", "expand-all").click()
    seen = set(browser.execute_script(COLLECT_ROWS_JS))
    assert seen == ids
    title = browser.find_element("css selector", "h1").text
    assert title == "pipeline <b>&</b> friends"  # shown as text, not markup


def test_filter_shows_matches_with_their_ancestors(browser: Any, tmp_path: Path) -> None:
    """Typing in the filter keeps the matching tasks and the path to them."""
    source = tmp_path / "big.json"
    save_task(make_tree(), source)
    page = tmp_path / "big.html"
    assert taskmeter("report", str(source), "-o", str(page)).returncode == 0
    browser.get(page.as_uri())
    browser.find_element("id", "search").send_keys("item 3.4.5")
    browser.implicitly_wait(0)
    for _ in range(50):
        count = browser.execute_script("return window.taskmeterReport.visibleCount()")
        if count == 4:
            break
        browser.execute_script("return new Promise(r => setTimeout(r, 50))")
    labels = [label_of(row) for row in browser.find_elements("css selector", ".row")]
    assert labels[:4] == ["pipeline <b>&</b> friends", "stage 3", "step 3.4", "item 3.4.5"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="taskmeter run needs Linux")
def test_report_of_a_run_hover_click_and_screenshot(browser: Any, tmp_path: Path) -> None:
    """The report of a real run: hover shows a task's figures, and the screenshot is not blank."""
    from selenium.webdriver.common.action_chains import ActionChains

    result, _ = run_command(
        tmp_path,
        program("../../../examples/quickstart.py", "--out", tmp_path / "q.json", "--data-mib", 64),
        "-l",
        "taskmeter run: quickstart",
    )
    assert result.returncode == 0, result.stderr
    page = tmp_path / "run.html"
    assert taskmeter("report", str(tmp_path / "run.json"), "-o", str(page)).returncode == 0
    browser.set_window_size(1400, 640)
    browser.get(page.as_uri())
    rows = {label_of(row): row for row in browser.find_elements("css selector", ".row")}
    assert {"taskmeter run: quickstart", "quickstart pipeline", "train model"} <= set(rows)
    ActionChains(browser).move_to_element(rows["train model"]).perform()
    details = browser.find_element("id", "details").text
    assert "train model" in details and "CPU, this task" in details and "ms" in details
    rows["load data"].click()
    ActionChains(browser).move_to_element(rows["evaluate"]).perform()
    assert "load data" in browser.find_element("id", "details").text  # pinned by the click
    rows["load data"].click()  # unpin, so the screenshot shows the root's figures on hover
    ActionChains(browser).move_to_element(rows["quickstart pipeline"]).perform()

    screenshot = tmp_path / "report.png"
    assert browser.save_screenshot(str(screenshot))
    image_module = pytest.importorskip("PIL.Image")
    stat_module = pytest.importorskip("PIL.ImageStat")
    with image_module.open(screenshot) as image:
        grey = image.convert("L")
        variance = stat_module.Stat(grey).var[0]
        colours = len(image.convert("RGB").getcolors(maxcolors=1 << 24) or ())
    assert variance > 100, f"screenshot looks blank (variance {variance:.1f})"
    assert colours > 50


def test_extra_fields_of_any_name_are_shown_as_text(browser: Any, tmp_path: Path) -> None:
    """User fields named like the page's own data (``energy``) or holding markup are rows
    of the details panel, beside the measured energy; the script runs to the end."""
    root = Task.model_validate(
        {
            "label": "root",
            "cpu_power": 12.5,
            "energy_sources": {"cpu": "rapl"},
            "energy": "from the wall meter",
            "note": "<img src=x onerror=\"document.title='x'\">",
            "subtasks": [],
        }
    )
    page = tmp_path / "extra.html"
    page.write_text(render_html(root))
    browser.get(page.as_uri())
    assert browser.execute_script("return typeof window.taskmeterReport") == "object"
    details = browser.find_element("id", "details").text
    assert "energy from the wall meter" in details
    assert "cpu 12.5 J (rapl)" in details
    assert "<img src=x" in details and browser.title != "x"


def test_a_long_label_leaves_the_task_tree_in_view(browser: Any, tmp_path: Path) -> None:
    """The heading of a root with a very long label takes at most two lines (the page title
    and the heading's tooltip keep it whole); it filled the window and hid the tree."""
    label = "step " + "x" * 3000
    with Task(label) as root, Task("child"):
        pass
    page = tmp_path / "long.html"
    page.write_text(render_html(root))
    browser.set_window_size(1400, 800)
    browser.get(page.as_uri())
    heading = browser.find_element("css selector", "h1")
    assert heading.size["height"] < 60
    assert heading.get_attribute("title") == label
    viewport_top = browser.execute_script(
        "return document.getElementById('viewport').getBoundingClientRect().top"
    )
    assert viewport_top < 200
    rows = [row for row in browser.find_elements("css selector", ".row") if row.is_displayed()]
    assert [label_of(row) for row in rows][1:] == ["child"]


def every_status_file(tmp_path: Path, stopped_pid: int) -> Path:
    """A root with one child of each status, ``running`` three times: one whose process
    (this test's) runs, one whose process is gone, one whose process (``stopped_pid``) is
    stopped; and figures at the units' edges."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    now = time.time()
    here = socket.gethostname()

    def child(label: str, status: str, **fields: object) -> dict[str, object]:
        return {"label": label, "status": status, "hostname": here, "start_time": now, **fields}

    root = Task.model_validate(
        {
            "label": "every status",
            "status": "running",
            "hostname": here,
            "pid": os.getpid(),
            "start_time": now,
            "subtasks": [
                child("done", "finished", duration=0.9995, cpu_time=59.995, peak_memory=1048575),
                child("broke", "failed", duration=3600.005, cpu_power=999.96),
                child("stopped", "cancelled", duration=0.0025, peak_memory=1280),
                child("queued", "pending"),
                child("alive", "running", pid=os.getpid(), peak_memory_at_most=25_784_320),
                child("killed", "running", pid=dead.pid, cpu_time=119.999, gpu_power=999_950.0),
                child("paused", "running", pid=stopped_pid, cpu_time=1.5),
            ],
        }
    )
    path = tmp_path / "statuses.json"
    save_task(root, path)
    return path


def report_rows(browser: Any) -> dict[str, dict[str, str]]:
    """Each row of the page by label: its status, its status mark, and its figures."""
    rows: dict[str, dict[str, str]] = browser.execute_script(
        """
        const out = {};
        for (const row of document.querySelectorAll('.row')) {
          if (row.style.display === 'none') continue;
          const res = Array.from(row.querySelectorAll('.res span')).map(s => s.textContent);
          const state = row.querySelector('.state');
          out[row.querySelector('.text').textContent] = {
            status: row.dataset.status,
            bar: row.querySelector('.bar').className,
            mark: state.style.display === 'none' ? '' : state.textContent,
            cpu: res[0], mem: res[1], gpu: res[2], energy: res[3],
          };
        }
        return out;
        """
    )
    return rows


def test_report_shows_every_status_as_show_does(browser: Any, tmp_path: Path) -> None:
    """Each task's status in the report is the one ``taskmeter show`` gives it, for every
    status: a task recorded as running whose process is gone is ``interrupted`` (bar and
    mark, with the reason in the details, and a note on standard error), one whose process
    is stopped is ``stopped`` (the same), one whose process runs stays ``running``; every
    status but ``finished`` is written beside the label; the
    figures are the table's, to the character (partial energy's ``*`` included)."""
    with stopped_process() as stopped_pid:
        source = every_status_file(tmp_path, stopped_pid)
        _check_every_status(browser, tmp_path, source, stopped_pid)


def shown_status(row: dict[str, Any]) -> str:
    """The status ``taskmeter show`` gives a row of its JSON output."""
    if row["interrupted"]:
        return "interrupted"
    return "stopped" if row["stopped"] else str(row["status"])


def _check_every_status(browser: Any, tmp_path: Path, source: Path, stopped_pid: int) -> None:
    shown = taskmeter("show", str(source), "--json")
    assert shown.returncode == 0, shown.stderr
    statuses = {task["label"]: shown_status(task) for task in json.loads(shown.stdout)["tasks"]}
    assert statuses == {
        "every status": "running",
        "done": "finished",
        "broke": "failed",
        "stopped": "cancelled",
        "queued": "pending",
        "alive": "running",
        "killed": "interrupted",
        "paused": "stopped",
    }
    table = taskmeter("show", str(source))
    assert table.returncode == 0, table.stderr
    figures = {}
    *lines, note = table.stdout.splitlines()[1:]
    assert note == "* partial energy: lacks the CPU or GPU energy other tasks have"
    for line in lines:
        label, status, _duration, cpu, mem, gpu, energy = re.split(r"\s{2,}", line.strip())
        figures[label] = {"status": status, "cpu": cpu, "mem": mem, "gpu": gpu, "energy": energy}

    page = tmp_path / "statuses.html"
    result = taskmeter("report", str(source), "-o", str(page))
    assert result.returncode == 0, result.stderr
    assert "taskmeter: 1 task interrupted: process " in result.stderr
    assert f"taskmeter: 1 task stopped: process {stopped_pid} is stopped" in result.stderr
    browser.get(page.as_uri())
    rows = report_rows(browser)
    assert {label: row["status"] for label, row in rows.items()} == statuses
    for label, row in rows.items():
        status = statuses[label]
        assert row["bar"] == f"bar {status}", label
        assert row["mark"] == ("" if status == "finished" else status), label
        expected = figures[label]
        assert expected["status"] == status
        for column in ("cpu", "mem", "gpu", "energy"):
            assert row[column] == expected[column], (label, column)
    assert rows["alive"]["mem"] == "<= 24.6 MiB"
    assert rows["done"]["mem"] == "1.0 MiB"
    assert "(1 interrupted, 1 stopped)" in browser.find_element("id", "meta").text

    killed = browser.find_element("xpath", "//div[@class='row']//span[text()='killed']")
    killed.click()
    details = browser.find_element("id", "details").text
    assert re.search(r"status interrupted: process \d+ is gone", details), details
    paused = browser.find_element("xpath", "//div[@class='row']//span[text()='paused']")
    paused.click()
    details = browser.find_element("id", "details").text
    assert f"status stopped: process {stopped_pid} is stopped" in details, details
    legend = browser.find_element("css selector", ".legend").text
    every = ["finished", "failed", "cancelled", "running", "interrupted", "stopped", "pending"]
    for status in every:
        assert status in legend
    # Each status has a swatch in the legend, and each swatch a look of its own.
    looks = browser.execute_script(
        "return arguments[0].map(s => {"
        " const e = document.querySelector('.legend .swatch.' + s);"
        " if (!e) return null;"
        " const c = getComputedStyle(e); return c.backgroundColor + c.backgroundImage; })",
        every,
    )
    assert None not in looks and len(set(looks)) == len(every), looks


FORMAT_EDGES: list[float | None] = [
    None,
    0,
    0.0004,
    0.0005,
    0.0015,
    0.0025,
    0.05,
    0.25,
    0.5,
    0.9994,
    0.9995,
    1,
    1.005,
    1.125,
    59.994,
    59.995,
    59.999,
    60,
    60.005,
    119.994,
    119.999,
    3599.994,
    3599.9999,
    3600,
    3600.004,
    999.94,
    999.95,
    999.96,
    1000,
    1023,
    1023.4,
    1023.5,
    1024,
    1152,
    1250,
    1280,
    3599.995,
    3600,
    3600.005,
    7199.999,
    90061.125,
    999_949,
    999_950,
    1_000_000,
    1048575,
    1048576,
    2**30 - 1,
    2**40 - 1,
    2**50 - 1,
    2**60,
    2.5e9,
    1e21,
    2.0**70,
    -1e25,
    1e300,
    1.7976931348623157e308,
    35_999_999.99,
    36_000_000,
    3.6e10 - 1,
    999_949_999.9,
    999_950_000,
    1.125e18,
    1.135e18,
    2**60 - 1,
    2.0**60 * 1024,
    9.995e20,
    9.985e20,
    -9.995e20,
]
"""Values at the edges of the units of durations, bytes and energy, and exact ties
(2.5, 1.25 KiB, 0.25 J: Python rounds them to even, JavaScript's toFixed up), and
numbers from 1e21 up, which toFixed writes with an exponent and Python digit by digit;
the edges of scientific notation (10,000 h, 1024 PiB, 1000 MJ) and its ties (1.125e18)."""


def test_page_formats_figures_as_python_does(browser: Any, tmp_path: Path) -> None:
    """The page's formatters write durations, byte counts and energies exactly as
    ``friendly_seconds``, ``friendly_bytes`` and ``friendly_energy`` do, at every unit
    edge: 1048575 bytes are ``1.0 MiB`` on both sides, 999.96 J ``1.0 kJ``, 1.25 KiB
    ``1.2 KiB``."""
    page = tmp_path / "format.html"
    page.write_text(render_html(Task.model_validate({"label": "r", "subtasks": []})))
    browser.get(page.as_uri())
    written = browser.execute_script(
        "const f = window.taskmeterFormat;"
        "return arguments[0].map(v => [f.seconds(v), f.bytes(v), f.energy(v)]);",
        FORMAT_EDGES,
    )
    python = [[friendly_seconds(v), friendly_bytes(v), friendly_energy(v)] for v in FORMAT_EDGES]
    mismatches = [
        (value, py, js)
        for value, py, js in zip(FORMAT_EDGES, python, written, strict=True)
        if py != js
    ]
    assert not mismatches
    by_value = dict(zip(map(str, FORMAT_EDGES), python, strict=True))
    assert by_value["1048575"][1] == "1.0 MiB"
    assert by_value["999.96"][2] == "1.0 kJ"
    assert by_value["1280"][1] == "1.2 KiB"


def test_a_huge_duration_renders_quickly_with_the_tables_figures(
    browser: Any, tmp_path: Path
) -> None:
    """A hand-made file with a finite but absurd duration (1e300 s), CPU time, peak memory
    and energy: the page loads at once (the timeline's axis drew a tick a day, forever) and
    writes the figures as ``taskmeter show`` does, to the last digit."""
    document = {
        "label": "huge",
        "status": "finished",
        "start_time": 1e9,
        "duration": 1e300,
        "cpu_time": 1e25,
        "peak_memory": 10**300,
        "peak_gpu_memory": 10**22,
        "cpu_power": 1e300,
        "subtasks": [{"label": "late", "start_time": 1e299, "duration": 1.0}],
    }
    source = tmp_path / "huge.json"
    source.write_text(json.dumps(document))
    page = tmp_path / "huge.html"
    assert taskmeter("report", str(source), "-o", str(page)).returncode == 0
    table = taskmeter("show", str(source))
    assert table.returncode == 0, table.stderr
    _label, _status, _duration, cpu, mem, gpu, energy = re.split(
        r"\s{2,}", table.stdout.splitlines()[1].strip()
    )
    browser.set_page_load_timeout(10)
    try:
        browser.get(page.as_uri())
        rows = report_rows(browser)
    finally:
        browser.set_page_load_timeout(60)
    assert rows["huge"] | {"status": "", "bar": "", "mark": ""} == {
        "status": "",
        "bar": "",
        "mark": "",
        "cpu": cpu,
        "mem": mem,
        "gpu": gpu,
        "energy": energy,
    }
    details = browser.find_element("id", "details").text
    assert f"duration {_duration}" in details and _duration == "2.78e+296h"
    assert not re.search(r"(?<![\d.])\d+e\+", details)  # no bare JavaScript 1e+300
    ticks = browser.find_elements("css selector", "#axis .tick")
    assert 2 <= len(ticks) <= 11


def chain(depth: int) -> Task:
    """A task ``d0`` with one subtask ``d1``, which has ``d2``, ... down to ``d{depth}``."""
    node: dict[str, Any] = {"label": f"d{depth}", "status": "finished"}
    for level in range(depth - 1, -1, -1):
        node = {"label": f"d{level}", "status": "finished", "subtasks": [node]}
    return Task.model_validate(node)


def test_labels_127_levels_down_stay_in_their_column(browser: Any, tmp_path: Path) -> None:
    """In a chain of 127 levels (as deep as a task file can be written), every row's label
    is drawn inside the task column, and rows deeper than the indentation goes write their
    level (labels from about level 23 on were pushed out of the column, unreadable)."""
    page = tmp_path / "deep.html"
    page.write_text(render_html(chain(127)))
    browser.get(page.as_uri())
    browser.find_element("id", "expand-all").click()
    placed = browser.execute_script(
        """
        const report = window.taskmeterReport, viewport = document.getElementById('viewport');
        const out = {};
        for (let top = 0; top <= report.visibleCount() * report.rowHeight; top += 200) {
          viewport.scrollTop = top;
          report.render();
          for (const row of viewport.querySelectorAll('.row')) {
            if (row.style.display === 'none') continue;
            const text = row.querySelector('.text').getBoundingClientRect();
            const cell = row.querySelector('.c-label').getBoundingClientRect();
            out[row.querySelector('.text').textContent] = [
              text.width > 0 && text.left >= cell.left && text.right <= cell.right,
              row.querySelector('.level').textContent,
            ];
          }
        }
        return out;
        """
    )
    assert len(placed) == 128
    assert [label for label, (inside, _) in placed.items() if not inside] == []
    assert placed["d127"][1] == "127"
    assert placed["d1"][1] == ""


def test_the_task_tree_is_usable_from_the_keyboard(browser: Any, tmp_path: Path) -> None:
    """Tab reaches the task tree; the arrow keys pick tasks (their figures in the details,
    the row marked selected, scrolled into view), Right and Left open and close a task
    and go to its subtask and parent, End goes to the last row, Escape unpins."""
    from selenium.webdriver.common.keys import Keys

    page = tmp_path / "keys.html"
    page.write_text(render_html(make_tree(3, 50, 2)))
    browser.get(page.as_uri())
    browser.find_element("id", "collapse-all").click()
    browser.switch_to.active_element.send_keys(Keys.TAB)
    assert browser.switch_to.active_element.get_attribute("id") == "viewport"

    def state() -> tuple[str, list[str]]:
        details = browser.find_element("css selector", "#details h2").text
        selected = [label_of(r) for r in browser.find_elements("css selector", ".row.selected")]
        return details, selected

    tree = browser.find_element("id", "viewport")
    tree.send_keys(Keys.ARROW_DOWN)
    assert state() == ("pipeline <b>&</b> friends", ["pipeline <b>&</b> friends"])
    tree.send_keys(Keys.ARROW_DOWN, Keys.ARROW_DOWN)
    assert state() == ("stage 1", ["stage 1"])
    count = browser.execute_script("return window.taskmeterReport.visibleCount()")
    tree.send_keys(Keys.ARROW_RIGHT)  # opens stage 1: its 50 steps show
    assert browser.execute_script("return window.taskmeterReport.visibleCount()") == count + 50
    tree.send_keys(Keys.ARROW_RIGHT)  # to its first step
    assert state() == ("step 1.0", ["step 1.0"])
    tree.send_keys(Keys.ARROW_LEFT)  # back to the parent
    assert state() == ("stage 1", ["stage 1"])
    tree.send_keys(Keys.ARROW_LEFT)  # closes it
    assert browser.execute_script("return window.taskmeterReport.visibleCount()") == count
    tree.send_keys(Keys.ARROW_RIGHT, Keys.END)
    assert state() == ("stage 2", ["stage 2"])
    tree.send_keys(Keys.ARROW_UP)
    assert state() == ("step 1.49", ["step 1.49"])  # scrolled into view, marked
    tree.send_keys(Keys.ESCAPE)
    assert state()[1] == []


PAYLOADS = (
    "</script><script>window.pwned = 1; document.title = 'pwned'</script>",
    "<!--<script>window.pwned = 2</script>",
    "<img src=x onerror=\"window.pwned = 3; document.title = 'pwned'\">",
    "javascript:window.pwned = 4",
    '<svg onload="window.pwned = 5">',
    "\"'><iframe srcdoc='<script>parent.pwned = 6</script>'>",
    "{{SCRIPT}} {{DATA}} line\u2028sep\u2029para nul\x00 bidi\u202eevil",
    "<link rel=stylesheet href=http://127.0.0.1:9/a.css><img src=http://127.0.0.1:9/b.png>",
)


def test_text_from_the_file_is_never_run_as_script(browser: Any, tmp_path: Path) -> None:
    """Markup and script in every text a task file holds (labels, host and machine names,
    energy source names, extra field names and values, the title) is shown as text: no
    script of the file runs, no element of it is made, the page's own script runs to the
    end, nothing is fetched, and the texts are written in the details as they are in the
    file (control and format characters escaped, as ``taskmeter show`` writes them)."""
    count = len(PAYLOADS)
    subtasks = [
        {
            "label": text,
            "status": "finished",
            "hostname": PAYLOADS[(i + 1) % count],
            "machine": PAYLOADS[(i + 2) % count],
            "cpu_power": 1.5,
            "energy_sources": {"cpu": PAYLOADS[(i + 3) % count]},
            PAYLOADS[(i + 4) % count]: PAYLOADS[(i + 5) % count],
            "__proto__": {"polluted": text},
        }
        for i, text in enumerate(PAYLOADS)
    ]
    source = tmp_path / "hostile.json"
    source.write_text(json.dumps({"label": PAYLOADS[0], "subtasks": subtasks}))
    page = tmp_path / "hostile.html"
    result = taskmeter("report", str(source), "-o", str(page), "--title", PAYLOADS[2])
    assert result.returncode == 0, result.stderr
    browser.get(page.as_uri())
    assert browser.execute_script("return typeof window.taskmeterReport") == "object"
    assert browser.execute_script("return window.pwned") is None
    assert browser.title == PAYLOADS[2] + " · taskmeter report"
    made = browser.execute_script(
        "return document.querySelectorAll('img, svg, iframe, link').length"
    )
    assert made == 0
    rows = browser.find_elements("css selector", ".row")
    for i, row in enumerate(rows[1 : count + 1]):
        row.click()  # pinned: the details are this task's
        cells = browser.execute_script(
            "const out = {};"
            "for (const tr of document.querySelectorAll('#details tr'))"
            "  out[tr.cells[0].textContent] = tr.cells[1].textContent;"
            "return [document.querySelector('#details h2').textContent, out];"
        )
        heading, details = cells
        shown = [terminal_text(PAYLOADS[(i + k) % count]) for k in range(6)]
        assert heading == shown[0]
        assert details["host"] == shown[1]
        assert details["machine"] == shown[2]
        assert details["  cpu"] == f"1.5 J ({shown[3]})"
        assert details[shown[4]] == shown[5]
        row.click()
    assert browser.execute_script("return window.pwned") is None
    # Nothing fetched over the network (Chromium lists even failed fetches of http URLs).
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0


def test_a_lenskit_file_shows_its_machine_and_worker_tasks(browser: Any, tmp_path: Path) -> None:
    """A file LensKit's own Task wrote: the machine it names (LensKit's field, set by
    taskmeter too) is in the details beside the host (the page left it out), and its
    subprocess task is marked as a worker process, as taskmeter's own are."""
    lenskit_tasks = pytest.importorskip("lenskit.logging.tasks")
    with (
        lenskit_tasks.Task("lenskit root", machine="gpu-box") as root,
        lenskit_tasks.Task("lenskit worker", subprocess=True),
    ):
        pass
    source = tmp_path / "lenskit.json"
    source.write_text(root.model_dump_json())
    page = tmp_path / "lenskit.html"
    assert taskmeter("report", str(source), "-o", str(page)).returncode == 0
    browser.get(page.as_uri())
    details = browser.find_element("id", "details").text
    assert "machine gpu-box" in details and "worker process no" in details
    worker = browser.find_element("xpath", "//span[@class='text'][text()='lenskit worker']/..")
    assert worker.find_element("css selector", ".badge").is_displayed()
    worker.click()
    details = browser.find_element("id", "details").text
    assert "worker process yes" in details and "machine" not in details


def test_without_javascript_the_page_is_a_table_of_the_tasks(browser: Any, tmp_path: Path) -> None:
    """With scripts off, the page shows the first 200 tasks as a table holding the text of
    ``taskmeter show`` (labels as text, markup included), says how many there are, and
    hides the controls that need scripts (it showed empty columns and a one-line note)."""
    source = tmp_path / "tree.json"
    save_task(make_tree(2, 10, 12), source)  # 263 tasks
    page = tmp_path / "tree.html"
    assert taskmeter("report", str(source), "-o", str(page)).returncode == 0
    table = taskmeter("show", str(source))
    assert table.returncode == 0, table.stderr
    expected = [re.split(r"\s{2,}", line.strip()) for line in table.stdout.splitlines()[1:201]]
    browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    try:
        browser.get(page.as_uri())
        shown = browser.execute_script(
            "return Array.from(document.querySelectorAll('.plain tbody tr'))"
            ".map(tr => Array.from(tr.cells).map(td => td.textContent))"
        )
        visible = [e.is_displayed() for e in browser.find_elements("css selector", "nav, main")]
        note = browser.find_element("css selector", ".plain p").text
    finally:
        browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": False})
    assert shown == expected
    assert shown[0][0] == "pipeline <b>&</b> friends"
    assert visible == [False, False]
    assert "the first 200 of 263" in note
    browser.get(page.as_uri())  # with scripts: the table is not shown
    assert not browser.find_element("css selector", "main").get_attribute("hidden")
    assert browser.find_elements("css selector", ".plain") == []


def test_the_pages_policy_runs_its_own_scripts_and_nothing_else(
    browser: Any, tmp_path: Path
) -> None:
    """Defence in depth: even markup that got into the page (as a bug in escaping would let
    it) runs no script, inline or by handler, and fetches nothing (a server on 127.0.0.1
    counts the requests), while the page's own two scripts run: the policy (script hashes,
    nothing fetched) is in the page itself."""
    import http.server
    import threading

    requests: list[str] = []

    class Counter(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Counter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        page_text = render_html(make_tree(1, 2, 2))
        smuggled = (
            "<script>window.pwned = 1</script>"
            f"<img src={url}/a.png onerror='window.pwned = 2'>"
            "<svg onload='window.pwned = 3'></svg>"
            f"<link rel=stylesheet href={url}/b.css>"
        )
        assert page_text.count("<main>") == 1
        page = tmp_path / "smuggled.html"
        page.write_text(page_text.replace("<main>", smuggled + "<main>"))
        browser.get(page.as_uri())
        browser.execute_script("return new Promise(r => setTimeout(r, 200))")
        assert browser.execute_script("return typeof window.taskmeterReport") == "object"
        assert browser.execute_script("return window.taskmeterReport.taskCount") == 8
        assert browser.execute_script("return window.pwned") is None
        assert requests == []
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


TRICKY_LABELS = (
    "abc\u202edef\u202c ghi",
    "\x1b]0;title\x07\x1b[31mred\x1b[0m",
    "two\nlines\rback\ttab",
    "nul\x00 del\x7f csi\x9b soft\xadhyphen",
    "line\u2028para\u2029zero\u200bwidth",
    "emoji \U0001f469\u200d\U0001f4bb e\u0301 日本 tag\U000e0001",
    "back\\slash \\x1b stays",
)


def test_page_escapes_control_and_format_characters_as_show_does(
    browser: Any, tmp_path: Path
) -> None:
    """Bidirectional overrides, escape sequences, line breaks, NUL, C1 controls and
    zero-width characters in labels are written escaped on the page (rows, details, heading,
    title, the table without scripts) exactly as ``taskmeter show`` prints them; joiners,
    combining marks and wide characters are kept. A right-to-left override reordered what
    the page showed (``abc\u202edef`` read as ``abcfed``), and the file held them raw."""
    document = {
        "label": TRICKY_LABELS[0],
        "subtasks": [{"label": label, "status": "finished"} for label in TRICKY_LABELS],
    }
    source = tmp_path / "tricky.json"
    source.write_text(json.dumps(document))
    table = taskmeter("show", str(source))
    assert table.returncode == 0, table.stderr
    printed = [re.split(r"\s{2,}", line.strip())[0] for line in table.stdout.splitlines()[1:]]
    expected = [terminal_text(label) for label in (TRICKY_LABELS[0], *TRICKY_LABELS)]
    assert printed == expected
    page = tmp_path / "tricky.html"
    assert taskmeter("report", str(source), "-o", str(page)).returncode == 0
    browser.get(page.as_uri())
    shown = browser.execute_script(
        "return Array.from(document.querySelectorAll('.row .text')).map(e => e.textContent)"
    )
    assert shown == expected
    assert browser.find_element("css selector", "#details h2").text == expected[0]
    assert (
        browser.execute_script("return document.querySelector('h1').textContent") == (expected[0])
    )
    assert browser.title == expected[0] + " · taskmeter report"
    # Nor is the file itself a way to the terminal (`cat`, `-o -`): no control character.
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]", page.read_text())
    plain = re.findall(r"<tr><td[^>]*>(.*?)</td>", page.read_text().split("<main>")[0])
    assert [html.unescape(cell) for cell in plain] == expected


def test_filter_finds_a_label_by_what_the_page_shows(browser: Any, tmp_path: Path) -> None:
    """A label with control and format characters is shown escaped (``\\u202e``, ``\\x1b``);
    typing that text in the filter box finds the task, as typing part of the label
    itself (pasted from the file) does."""
    labels = ["invoice\u202efdp.exe", "red \x1b[31malert", "tab\there"]
    with Task("root") as root:
        for label in labels:
            with Task(label):
                pass
        with Task("bystander"):
            pass
    page = tmp_path / "escaped.html"
    page.write_text(render_html(root))
    browser.get(page.as_uri())
    search = browser.find_element("id", "search")

    def shown_after_typing(text: str) -> list[str]:
        search.clear()
        search.send_keys(text)
        browser.execute_script("return new Promise(r => setTimeout(r, 300))")
        return [
            label_of(row)
            for row in browser.find_elements("css selector", ".row.match")
            if row.is_displayed()
        ]

    for label in labels:
        seen = terminal_text(label)
        assert seen != label
        assert shown_after_typing(seen) == [seen], seen
        assert shown_after_typing(seen[-8:].upper()) == [seen], seen
    assert shown_after_typing("invoice\u202efdp") == [terminal_text(labels[0])]
    assert shown_after_typing("\\u202") == [terminal_text(labels[0])]


ENERGY_CELLS_JS = """
return Array.from(document.querySelectorAll('.row')).filter(r => r.style.display !== 'none')
  .map(r => [r.querySelector('.text').textContent, r.querySelectorAll('.res')[3].textContent,
             r.querySelectorAll('.res .fill')[3].classList.contains('partial')]);
"""


def test_energy_lacking_a_domain_other_tasks_have_is_marked_partial(
    browser: Any, tmp_path: Path
) -> None:
    """``b`` (its GPU unreadable) shows ``100.0 J*`` with a hatched bar, its details say what
    it lacks, and the legend explains the mark (the header's total is marked as well where
    the root lacks a domain); a tree without any GPU figure, or with
    system energy, shows whole figures and no legend line."""
    page = tmp_path / "partial.html"
    page.write_text(render_html(GPU_LOST_IN_B))
    browser.get(page.as_uri())
    assert browser.execute_script(ENERGY_CELLS_JS) == [
        ["root", "1.2 kJ", False],
        ["a", "600.0 J", False],
        ["b", "100.0 J*", True],
    ]
    note = browser.find_element("id", "partial-note")
    assert note.is_displayed()
    assert note.text == "* partial energy: lacks the GPU energy other tasks have"
    browser.find_element("xpath", "//span[@class='text'][text()='b']/..").click()
    assert "energy 100.0 J* (partial: no GPU energy measured)" in (
        browser.find_element("id", "details").text
    )
    totals = browser.find_element("id", "totals").text
    assert "1.2 kJ" in totals and "*" not in totals
    root_lost = energy_siblings(
        {"cpu_power": 100.0, "gpu_power": 500.0}, {"cpu_power": 100.0}, {"cpu_power": 200.0}
    )
    page.write_text(render_html(root_lost))
    browser.get(page.as_uri())
    assert "200.0 J*" in browser.find_element("id", "totals").text  # the header's figure too
    for tree, whole in (
        (NO_GPU, ["200.0 J", "100.0 J", "100.0 J"]),
        (WITH_SYSTEM, ["1.5 kJ", "700.0 J", "800.0 J"]),
    ):
        page.write_text(render_html(tree))
        browser.get(page.as_uri())
        cells = browser.execute_script(ENERGY_CELLS_JS)
        assert [[energy, partial] for _, energy, partial in cells] == [[e, False] for e in whole]
        assert not browser.find_element("id", "partial-note").is_displayed()


def tick_labels(browser: Any, tmp_path: Path, span: float) -> list[tuple[float, str]]:
    """The timeline's ticks for a task of ``span`` seconds: (seconds, label) each."""
    root = Task.model_validate(
        {"label": "run", "status": "finished", "start_time": 1.7e9, "duration": span}
    )
    page = tmp_path / "ticks.html"
    page.write_text(render_html(root))
    browser.get(page.as_uri())
    ticks = browser.execute_script(
        "return Array.from(document.querySelectorAll('#axis .tick'))"
        ".map(t => [parseFloat(t.style.left), t.textContent])"
    )
    return [(round(left * span / 100, 6), label) for left, label in ticks]


def tick_seconds(label: str) -> float:
    """The seconds a tick label such as ``1h15m``, ``1m30s``, ``1.5s`` or ``20ms`` writes."""
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:([\d.]+)s)?(?:(\d+)ms)?", label)
    assert match and label, label
    hours, minutes, seconds, millis = match.groups()
    return (
        int(hours or 0) * 3600
        + int(minutes or 0) * 60
        + float(seconds or 0)
        + int(millis or 0) / 1000
    )


@pytest.mark.parametrize(
    ("span", "expected"),
    [
        (5000, ["0", "15m", "30m", "45m", "1h", "1h15m"]),
        (90, ["0", "15s", "30s", "45s", "1m", "1m15s", "1m30s"]),
        (8000, ["0", "30m", "1h", "1h30m", "2h"]),
        (2.5, ["0", "500ms", "1s", "1.5s", "2s", "2.5s"]),
    ],
)
def test_timeline_ticks_write_their_exact_time(
    browser: Any, tmp_path: Path, span: float, expected: list[str]
) -> None:
    """Ticks every 15 minutes on a 5000 s run read ``1h15m`` at 4500 s (it read ``1.3 h``),
    every 15 s on a 90 s run ``1m15s``: each label is its tick's time."""
    assert [label for _, label in tick_labels(browser, tmp_path, span)] == expected


@pytest.mark.parametrize(
    "span", [0.004, 0.07, 0.25, 1.1, 7, 45, 100, 170, 500, 1000, 2000, 4000, 6300, 20000, 50000]
)
def test_every_tick_label_is_the_time_of_its_tick(
    browser: Any, tmp_path: Path, span: float
) -> None:
    """Whatever the span (milliseconds to half a day), a tick's label, read back, is the
    time at which the tick stands."""
    ticks = tick_labels(browser, tmp_path, span)
    assert len(ticks) >= 2
    for seconds, label in ticks[1:]:
        # The position is read back from the page's style, to about 6 digits.
        assert tick_seconds(label) == pytest.approx(seconds, rel=1e-5), (span, label)

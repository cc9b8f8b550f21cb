"""The HTML report in headless Chromium: every task is drawn, hovering shows figures,
the page renders fast with 5000 tasks, and its screenshot is not blank."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskmeter import Task
from taskmeter.report import render_html
from taskmeter.taskfile import save_task

from ..conftest import require_executable
from .runner import program, run_command, taskmeter
from .trees import make_tree

SCREENSHOT_ENV = "TASKMETER_REPORT_SCREENSHOT"
"""Set to a path to keep the screenshot of the run report (docs/report.png comes from it)."""

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
    keep = os.environ.get(SCREENSHOT_ENV)
    if keep:
        shutil.copyfile(screenshot, keep)


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

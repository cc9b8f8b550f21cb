"""Draw docs/report.png: the report of the README's example run, in headless Chromium.

    python docs/report_png.py [--out docs/report.png]

Runs ``taskmeter run -o runs/quickstart-run.json -- python examples/quickstart.py``
(labelled with that command)
in a scratch directory (so the page names ``runs/quickstart-run.json``, not a path of
this machine), writes its report with ``taskmeter report``, and has Chromium (Debian's
``chromium``) take a screenshot of it.  Needs taskmeter installed in the running Python.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
LABEL = "python examples/quickstart.py"
"""The run's label: the command, as the README writes it."""
WINDOW = (1400, 530)
"""The screenshot's size in pixels: the whole tree of the run and its details panel."""


def run(*command: str | Path, cwd: Path) -> None:
    """Run ``command`` in ``cwd``; stop with its output if it fails."""
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        sys.exit(f"{' '.join(map(str, command))} failed:\n{result.stdout}{result.stderr}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "report.png", help="the PNG to write")
    parser.add_argument("--chromium", default="chromium", help="the Chromium executable")
    args = parser.parse_args()
    chromium = shutil.which(args.chromium)
    if chromium is None:
        sys.exit(f"{args.chromium} not found (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="taskmeter-report-png-") as scratch:
        work = Path(scratch)
        (work / "examples").mkdir()
        shutil.copy(HERE.parent / "examples" / "quickstart.py", work / "examples")
        taskmeter = (sys.executable, "-m", "taskmeter")
        run(*taskmeter, "run", "-o", "runs/quickstart-run.json", "-l", LABEL, "--",
            sys.executable, "examples/quickstart.py", "--out", "runs/quickstart.json",
            cwd=work)  # fmt: skip
        run(*taskmeter, "report", "runs/quickstart-run.json", "-o", "runs/report.html", cwd=work)
        shot = work / "report.png"
        run(
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-background-networking",
            f"--user-data-dir={work / 'profile'}",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            f"--screenshot={shot}",
            (work / "runs" / "report.html").as_uri(),
            cwd=work,
        )
        if not shot.exists():
            sys.exit("chromium wrote no screenshot")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

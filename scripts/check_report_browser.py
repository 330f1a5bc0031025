#!/usr/bin/env python
"""Open a generated HTML report in headless Chromium and check it really works there.

Builds a report from the hand-made ops table of the report tests (tests/samples.py), then with a fresh profile:
1. dumps the report's DOM: the op and layer tables are there and the report's own
   load handler marked the roofline image as decoded (img.complete and naturalWidth > 0);
2. dumps the DOM of a copy with a test script added that clicks the op table's
   time header twice and records whether the rows came out ascending then
   descending, and whether the page fetched anything over http(s);
3. takes a screenshot and checks it is not blank;
4. in a 1280x800 window, checks the first screen shows the key figures and the
   roofline image (both start above the fold, no warning box before them), and
   that no op without FLOPs carries a ceiling flag.
With `--report PATH` it runs checks 1 (image), 3 and 4 on an existing report
(e.g. `traceflops profile --out DIR` wrote DIR/report.html) instead.
Prints PASS or FAIL (with reasons) and exits non-zero on failure.

Usage: python scripts/check_report_browser.py [--chromium PATH] [--keep DIR] [--report PATH]
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib.image
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the sample ops table the report tests use

from samples import REPORT_CEILINGS as CEILINGS, REPORT_ROWS as ROWS, REPORT_SUMMARY as SUMMARY  # noqa: E402
from samples import report_ops  # noqa: E402
from traceflops.report.html import write_report  # noqa: E402
from traceflops.report.plots import roofline_png  # noqa: E402
from traceflops.roofline import apply_roofline  # noqa: E402

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--window-size=1280,1800", "--virtual-time-budget=5000"]
CHROMIUM_TIMEOUT_S = 90
# Added to a copy only: exercises the sorter and looks for network fetches.
CHECK_SCRIPT = """
<script>
window.addEventListener('load', function () {
  var table = document.getElementById('op-table');
  var header = table.querySelector('th[title="total_time_us"]');
  var column = Array.prototype.indexOf.call(header.parentNode.cells, header);
  function values() {
    return Array.prototype.map.call(table.tBodies[0].rows, function (row) {
      return parseFloat(row.cells[column].getAttribute('data-sort'));
    });
  }
  function ordered(list, direction) {
    for (var i = 1; i < list.length; i++) { if (direction * (list[i] - list[i - 1]) < 0) { return false; } }
    return true;
  }
  header.click();
  var ascending = ordered(values(), 1) && header.classList.contains('sorted-asc');
  header.click();
  var descending = ordered(values(), -1) && header.classList.contains('sorted-desc');
  var fetched = performance.getEntriesByType('resource').filter(function (entry) {
    return /^https?:/.test(entry.name);
  }).length;
  var root = document.documentElement;
  root.setAttribute('data-sort-check', ascending && descending ? 'ok' : 'bad');
  root.setAttribute('data-network-fetches', String(fetched));
});
</script>
"""


FIRST_SCREEN_WINDOW = "--window-size=1280,800"
FIRST_SCREEN_SCRIPT = """
<script>
window.addEventListener('load', function () {
  var fold = window.innerHeight, problems = [];
  var figures = document.getElementById('key-figures'), image = document.getElementById('roofline-image');
  if (!figures || figures.getBoundingClientRect().top >= fold) { problems.push('key figures below the fold'); }
  if (!image || image.getBoundingClientRect().top >= fold) { problems.push('roofline below the fold'); }
  var boxes = document.querySelectorAll('.warning, .caution');
  if (boxes.length && figures && boxes[0].getBoundingClientRect().top < figures.getBoundingClientRect().top) {
    problems.push('a warning box comes before the figures');
  }
  var table = document.getElementById('op-table');
  if (table) {
    var heads = Array.prototype.map.call(table.tHead.rows[0].cells, function (c) { return c.title; });
    var flops = heads.indexOf('flops'), flags = heads.indexOf('flags');
    Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
      if (flops >= 0 && flags >= 0 && row.cells[flops].getAttribute('data-sort') === '0.0'
          && /ceiling|peak|roof/i.test(row.cells[flags].textContent)) {
        problems.push('zero-FLOP op flagged: ' + row.cells[0].textContent);
      }
    });
  }
  document.documentElement.setAttribute('data-first-screen', problems.length ? problems.join('; ') : 'ok');
});
</script>
"""


def check_first_screen(chromium: str, work: Path, report: Path, failures: list) -> None:
    """Open a copy of `report` with FIRST_SCREEN_SCRIPT in a 1280x800 window; record what it found."""
    copy = work / "report-first-screen.html"
    copy.write_text(report.read_text(encoding="utf-8").replace("</body>", FIRST_SCREEN_SCRIPT + "</body>"),
                    encoding="utf-8")
    profile = work / "profile-first-screen"
    profile.mkdir()
    flags = [f for f in CHROMIUM_FLAGS if not f.startswith("--window-size")] + [FIRST_SCREEN_WINDOW]
    result = subprocess.run([chromium, *flags, f"--user-data-dir={profile}", "--dump-dom", copy.as_uri()],
                            capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S)
    (work / "dom-first-screen.html").write_text(result.stdout, encoding="utf-8")
    found = re.search(r'<html[^>]*data-first-screen="([^"]*)"', result.stdout)
    if not found:
        failures.append("the first-screen check did not run")
    elif found.group(1) != "ok":
        failures.append("first screen: " + found.group(1))


def check_existing(chromium: str, report: Path, work: Path) -> int:
    failures: list = []
    dom = run_chromium(chromium, work, "profile-dom", "--dump-dom", report.resolve().as_uri())
    if not re.search(r'<html[^>]*data-roofline-image="loaded"', dom.stdout):
        failures.append("roofline image did not decode")
    screenshot = work / "screenshot.png"
    run_chromium(chromium, work, "profile-shot", f"--screenshot={screenshot}", report.resolve().as_uri())
    check_screenshot(screenshot, failures)
    check_first_screen(chromium, work, report, failures)
    if failures:
        print("FAIL: " + "; ".join(failures))
        return 1
    print(f"PASS: {report} opened in {chromium}: roofline image decoded, screenshot not blank, the first "
          "1280x800 screen shows the key figures and the roofline before any warning, no zero-FLOP op flagged")
    return 0


def find_chromium(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def run_chromium(chromium: str, work: Path, profile_name: str, *action: str) -> subprocess.CompletedProcess:
    """One headless run with its own fresh profile directory."""
    profile = work / profile_name
    profile.mkdir()
    command = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *action]
    return subprocess.run(command, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S)


def check_report_dom(dom: str, failures: list) -> None:
    if not re.search(r'<html[^>]*data-roofline-image="loaded"', dom):
        failures.append("roofline image did not decode (no data-roofline-image=\"loaded\" on <html>)")
    op_table = dom.split('id="op-table"', 1)
    if len(op_table) < 2:
        failures.append("op table missing from the DOM")
    else:
        rows = op_table[1].split("</table>", 1)[0].count("<tr")
        if rows != len(ROWS) + 1:
            failures.append(f"op table has {rows} rows, expected {len(ROWS) + 1} (header + ops)")
    if 'id="layer-table"' not in dom:
        failures.append("layer table missing from the DOM")
    if "model/&lt;odd&gt; &amp; name" not in dom:
        failures.append("escaped op name not found")


def check_sorter_dom(dom: str, failures: list) -> None:
    if not re.search(r'<html[^>]*data-sort-check="ok"', dom):
        failures.append("clicking the time header did not sort the op table both ways")
    if not re.search(r'<html[^>]*data-network-fetches="0"', dom):
        failures.append("the page fetched something over http(s), or the check script did not run")


def check_screenshot(path: Path, failures: list) -> None:
    if not path.exists() or path.stat().st_size == 0:
        failures.append("no screenshot written")
        return
    pixels = matplotlib.image.imread(str(path))
    if float(np.var(pixels[..., :3])) < 1e-3:
        failures.append("screenshot is blank")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", help="browser binary (default: chromium on PATH)")
    parser.add_argument("--keep", help="write the report, DOM dumps and screenshot here and keep them")
    parser.add_argument("--report", help="check this existing report.html instead of a hand-made one")
    args = parser.parse_args(argv)
    chromium = find_chromium(args.chromium)
    if chromium is None:
        print("FAIL: no Chromium found (apt-get install -y chromium)")
        return 2
    with tempfile.TemporaryDirectory(prefix="traceflops-browser-") as scratch:
        work = Path(args.keep) if args.keep else Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        if args.report:
            if not Path(args.report).is_file():
                print(f"FAIL: {args.report}: no such report")
                return 2
            return check_existing(chromium, Path(args.report), work)
        ops = apply_roofline(report_ops(), CEILINGS)
        png = Path(roofline_png(ops, CEILINGS, work / "roofline.png", title="browser check"))
        report = Path(write_report(ops, SUMMARY, CEILINGS, png, work / "report.html"))
        with_check = work / "report-with-check.html"
        with_check.write_text(report.read_text(encoding="utf-8").replace("</body>", CHECK_SCRIPT + "</body>"),
                              encoding="utf-8")
        screenshot = work / "screenshot.png"
        failures: list = []
        try:
            dom = run_chromium(chromium, work, "profile-dom", "--dump-dom", report.as_uri())
            sorted_dom = run_chromium(chromium, work, "profile-sort", "--dump-dom", with_check.as_uri())
            shot = run_chromium(chromium, work, "profile-shot", f"--screenshot={screenshot}", report.as_uri())
        except subprocess.TimeoutExpired as error:
            print(f"FAIL: Chromium did not finish in {CHROMIUM_TIMEOUT_S} s: {error.cmd[0]}")
            return 1
        for name, result in (("dump-dom", dom), ("dump-dom (sort)", sorted_dom), ("screenshot", shot)):
            if result.returncode != 0:
                failures.append(f"chromium {name} exited {result.returncode}: {result.stderr.strip()[-300:]}")
        (work / "dom.html").write_text(dom.stdout, encoding="utf-8")
        (work / "dom-sort.html").write_text(sorted_dom.stdout, encoding="utf-8")
        check_report_dom(dom.stdout, failures)
        check_sorter_dom(sorted_dom.stdout, failures)
        check_screenshot(screenshot, failures)
        check_first_screen(chromium, work, report, failures)
        if failures:
            print("FAIL: " + "; ".join(failures))
            return 1
        print(f"PASS: report ({report.stat().st_size:,} bytes) opened in {chromium}: tables present, "
              "roofline image decoded, header sort works both ways, no network fetches, screenshot not blank")
        return 0


if __name__ == "__main__":
    sys.exit(main())

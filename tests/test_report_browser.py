"""index.html in a real browser: headless Chromium opens it from disk (file://), offline.

No console error, no uncaught script error, no failed request, no request leaving the file's
folder; the sort script runs; a screenshot at 1366x900 is written into the test's temp folder
(its path is printed: ``pytest -s`` shows it). A template that names a missing variable fails
before any page exists (StrictUndefined).

Needs Chromium (Debian's ``chromium``; ``.ci/run`` installs it) and the ``playwright`` package
(the dev extras); skipped, with the reason, only where either is missing. Set
``I3DBENCH_CHROMIUM`` to use another Chromium binary.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import jinja2
import pytest
from test_history import _runs
from test_report import fixture_zoo, write_fixture

from i3dbench import render_html
from i3dbench.report import render_report
from i3dbench.zoo import get_entry, load_zoos

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def _chromium() -> str:
    for path in (os.environ.get("I3DBENCH_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium",
                 shutil.which("chromium-browser")):
        if path and Path(path).is_file() and os.access(path, os.X_OK):
            return path
    pytest.skip("no Chromium found (install Debian's `chromium`, as .ci/run does, or set I3DBENCH_CHROMIUM): "
                "the real-browser test of index.html did not run")


def open_page(html: Path, screenshot: Path) -> dict:
    """Load ``html`` from disk in headless Chromium at 1366x900; what the browser saw."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the `playwright` package is missing (pip install -e '.[dev]'): the real-browser test did not run")
    seen = {"console": [], "errors": [], "failed": [], "requests": [], "rows_sorted": None}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            page.on("console", lambda m: seen["console"].append(f"{m.type}: {m.text}")
                    if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: seen["errors"].append(str(e)))
            page.on("requestfailed", lambda r: seen["failed"].append(f"{r.url}: {r.failure}"))
            page.on("request", lambda r: seen["requests"].append(r.url))
            response = page.goto(html.resolve().as_uri(), wait_until="load")
            seen["status_ok"] = response is not None and response.ok
            seen["title"] = page.title()
            seen["zoo_rows"] = page.locator("#zoo table.zoo tbody tr").count()
            seen["history_plots"] = page.locator("#history svg.hist").count()
            page.screenshot(path=str(screenshot))
            # The sort script: a click on a sortable header reorders the rows (and raises nothing).
            first = page.locator("table.sortable").first
            before = first.locator("tbody tr td:first-child").all_inner_texts()
            first.locator("thead th").first.click()
            after = first.locator("tbody tr td:first-child").all_inner_texts()
            seen["rows_sorted"] = (sorted(before) == sorted(after), before, after)
        finally:
            browser.close()
    return seen


@pytest.fixture
def report(tmp_path):
    """A report of the fixture records, a history of two runs with a planted slowdown, the shipped zoo."""
    zoo = dict(load_zoos())
    zoo.update(fixture_zoo())
    write_fixture(tmp_path / "run" / "records", zoo)
    runs = _runs(tmp_path / "runs", (False, True))
    res = render_report(tmp_path / "run", tmp_path / "run" / "report", zoo=zoo, history=[tmp_path / "runs"])
    return res, runs


def test_index_html_loads_cleanly_in_chromium(report, tmp_path):
    res, _ = report
    shot = tmp_path / "index-1366x900.png"
    seen = open_page(res.html, shot)
    print(f"\nscreenshot: {shot} | index.html: {res.html} ({res.html.stat().st_size} bytes)")
    assert seen["status_ok"] and seen["title"] == "i3dbench report"
    assert seen["console"] == [] and seen["errors"] == [], (seen["console"], seen["errors"])
    assert seen["failed"] == []
    assert seen["requests"] == [res.html.resolve().as_uri()]  # the page itself, nothing else
    assert seen["zoo_rows"] == len(res.tables.accuracy)
    assert seen["history_plots"] >= 1
    ok, before, after = seen["rows_sorted"]
    names = [text.split("\n")[0] for text in after]
    assert ok and names == sorted(names, key=str.lower) and after != before  # the click sorted them
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 20_000  # a page, not a blank
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1366, 900)
        assert len(im.convert("L").getcolors(maxcolors=1 << 16) or range(1 << 16)) > 16  # not one flat colour


def test_a_planted_template_error_fails_before_the_browser(report, tmp_path, monkeypatch):
    res, _ = report
    _chromium()  # same skip reason as the browser test
    templates = tmp_path / "templates"
    templates.mkdir()
    for p in (Path(render_html.__file__).parent / "templates").iterdir():
        text = p.read_text()
        if p.name == "index.html.j2":
            text = text.replace("{{ n_records }}", "{{ n_records_shown }}")
        (templates / p.name).write_text(text)
    monkeypatch.setattr(render_html, "environment", lambda: jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates)), autoescape=True, undefined=jinja2.StrictUndefined))
    out = tmp_path / "out"
    with pytest.raises(jinja2.UndefinedError, match="n_records_shown"):
        render_report(res.out_dir.parent, out, zoo={"smoke_i3d_tiny_video": get_entry("smoke_i3d_tiny_video")})
    assert not (out / "index.html").exists()

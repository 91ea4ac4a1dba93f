"""The table model (tables.py) and its HTML renderer (render_html.py): golden selection, short
names, zoo rows within 120 characters, a self-contained page, and templates that fail loudly.

The golden file holds the *model* (which record each row shows, and the raw values), not rendered
bytes: restyling the page never moves it, a change of selection always does. Refresh it after an
intended change with ``I3DBENCH_UPDATE_GOLDEN=1 pytest tests/test_report_html.py``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import jinja2
import pytest
from test_report import _eval, fixture_zoo, write_fixture

from i3dbench import render_html, tables
from i3dbench.records import write_record
from i3dbench.render_markdown import MAX_ROW, zoo_table_markdown
from i3dbench.report import render_report
from i3dbench.zoo import load_zoos

GOLDEN = Path(__file__).parent / "golden" / "report" / "table_model.json"


def _sweep_record(zoo, label, knobs, top1, base, time, vs=None):
    rec = _eval("smoke_t", top1, [top1 - 10, min(100.0, top1 + 5)], 100.0, [94.4, 100.0], time, num_videos=64,
                zoo=zoo, views=6)
    if not base:
        rec["method"]["protocol"] += f"-sweep[{label}]"
    rec["extra"]["sweep"] = {"knobs": knobs, "label": label, "base": base, "vs_base": vs}
    return rec


COMPARE = {
    "schema": 1, "kind": "compare", "time": "2024-06-12T00:00:00+00:00",
    "base": {"rev": "HEAD~1", "commit": "1" * 40, "dirty": False, "diff_sha256": None, "subject": "before"},
    "head": {"rev": "HEAD", "commit": "2" * 40, "dirty": True, "diff_sha256": "d" * 64, "subject": "after"},
    "settings": {"rounds": 6, "max_rounds": 16, "block_s": 0.5, "alpha": 0.05}, "exit_code": 1,
    "checks": [
        {"entry": "smoke_t", "metric": "video_per_s", "base": 40.1, "head": 26.7, "ratio": 1.5,
         "interval": [1.45, 1.55], "tolerance": "x1.10", "rounds": 6, "p": 0.001, "p_holm": 0.002,
         "verdict": "REGRESSED", "why": "slower beyond the tolerance", "accepted_by": None, "round_ratios": [1.5] * 6,
         "blocks": {"base": [[0.1]], "head": [[0.15]]}},
        {"entry": "smoke_t", "metric": "top1", "base": 89.06, "head": 89.06, "ratio": 1.0, "interval": None,
         "tolerance": "0 flips", "rounds": 1, "p": 1.0, "p_holm": 1.0, "verdict": "SAME", "why": "",
         "accepted_by": None},
    ],
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The report fixture's records plus a sweep of smoke_t and a compare file, rendered once."""
    root = tmp_path_factory.mktemp("html") / "run"
    zoo = fixture_zoo()
    files = write_fixture(root / "records", zoo)
    vs = {"delta_top1": 3.125, "interval": [-3.22, 10.46], "p_mcnemar": 0.5, "lost": 0, "gained": 2, "n_common": 64}
    for rec in (_sweep_record(zoo, "sampler=1.x, averaging=prob", {"sampler": "1.x", "averaging": "prob"}, 89.0625,
                              True, "2024-06-12T01:00:00+00:00"),
                _sweep_record(zoo, "sampler=0.x, averaging=prob", {"sampler": "0.x", "averaging": "prob"}, 92.1875,
                              False, "2024-06-12T01:00:01+00:00", vs)):
        files[rec["extra"]["sweep"]["label"]] = write_record(rec, root / "records").name
    (root / "compare").mkdir()
    (root / "compare" / "compare-20240612T000000Z.json").write_text(json.dumps(COMPARE))
    res = render_report(root, root / "report", zoo=zoo)
    return root, res, files, zoo


def _model(t: tables.Tables) -> dict:
    """The selection and raw values of every table: what the golden file pins."""
    keep = {
        "accuracy": ["entry", "scale", "record", "protocol", "top1", "top1_low", "top1_high", "within_tolerance"],
        "other_evals": ["entry", "scale", "record", "status"],
        "speed": ["model", "scale", "device", "protocol", "settings", "video_per_s", "vs_published", "record"],
        "memory": ["model", "scale", "device", "inference_kind", "inference_mb", "train_kind", "train_mb",
                   "train_vs_published", "record"],
        "sweep": ["entry", "variant", "base", "top1", "delta_top1", "mcnemar_p", "record"],
    }
    out = {name: [{k: row[k] for k in cols} for row in getattr(t, name)] for name, cols in keep.items()}
    out["short"] = t.short
    out["compares"] = [{k: c[k] for k in ("file", "base", "head", "exit_code")} | {"checks": [
        {k: x[k] for k in ("entry", "metric", "ratio", "ratio_low", "ratio_high", "verdict")} for x in c["checks"]]}
        for c in t.compares]
    return out


def test_table_model_matches_golden(run):
    _, res, _, _ = run
    text = json.dumps(_model(res.tables), indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    if os.environ.get("I3DBENCH_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), "the table model differs from its golden file (I3DBENCH_UPDATE_GOLDEN=1)"


def test_sweep_and_compare_rows(run):
    _, res, files, _ = run
    t = res.tables
    labels = ["sampler=1.x, averaging=prob", "sampler=0.x, averaging=prob"]
    assert [r["record"] for r in t.sweep] == [files[label] for label in labels]
    assert t.sweep[0]["base"] and t.sweep[1]["delta_top1"] == 3.125
    (c,) = t.compares
    assert c["base"].startswith("HEAD~1 (11111111)") and "+dirty" in c["head"]
    assert [x["verdict"] for x in c["checks"]] == ["REGRESSED", "SAME"]
    html = res.html.read_text()
    assert "sampler=0.x, averaging=prob" in html and ">REGRESSED<" in html and "x1.500 [1.450, 1.550]" in html


def test_a_report_without_compare_files_or_sweeps_has_no_such_sections(tmp_path):
    zoo = fixture_zoo()
    write_fixture(tmp_path / "run" / "records", zoo)
    res = render_report(tmp_path / "run", tmp_path / "out", zoo=zoo)
    html = res.html.read_text()
    assert res.tables.compares == [] and 'id="compare"' not in html and 'id="sweep"' not in html


def test_short_names_are_unique_and_short_for_the_shipped_zoo():
    entries = load_zoos()
    short = tables.short_names(entries)
    assert len(set(short.values())) == len(short) == len(entries)
    assert max(len(s) for s in short.values()) <= tables.SHORT_MAX
    assert short["i3d_imagenet-pretrained-r50-nl-embedded-gaussian_8xb8-32x2x1-100e_kinetics400-rgb"] == \
        "1.x r50-nl-emb-gauss"
    assert short["i3d_r50_32x2x1_100e_kinetics400_rgb"] == "0.x r50"


def _zoo_rows(md: str) -> list[str]:
    return [line for line in md.splitlines() if line.startswith("|")]


def test_zoo_table_rows_fit_120_characters(run):
    _, res, _, _ = run
    rows = _zoo_rows(zoo_table_markdown(res.tables, "results/report/README.md"))
    assert rows and max(len(r) for r in rows) <= MAX_ROW
    # The shipped zoo (80-character names) with its widest numbers: a clash of long names too.
    entries = dict(load_zoos())
    long = "i3d_imagenet-pretrained-r50-nl-embedded-gaussian_8xb8-32x2x1-100e_kinetics400-rgb"
    for n in (2, 3):
        entries[f"{long}_copy{n}_with_an_even_longer_name"] = dataclasses.replace(entries[long], name=f"{long}_{n}")
    big = tables.build_tables(entries, [])
    for r in big.accuracy:
        r.update(top1=100.0, top1_low=94.39, top1_high=100.0, top5=100.0, top5_low=94.39, top5_high=100.0,
                 delta_top1=-26.88, within_tolerance=False)
    rows = _zoo_rows(zoo_table_markdown(big))
    assert len(rows) == len(entries) + 2 and max(len(r) for r in rows) <= MAX_ROW, max(rows, key=len)
    assert long in zoo_table_markdown(big)  # the legend names every entry in full


EXTERNAL = [
    (re.compile(r"https?:|ftp:|file:", re.IGNORECASE), "a URL scheme"),
    (re.compile(r"//"), "a protocol-relative URL or comment"),
    (re.compile(r"@import", re.IGNORECASE), "a CSS import"),
    (re.compile(r"url\s*\(", re.IGNORECASE), "a CSS url()"),
    (re.compile(r"<(link|iframe|object|embed|img|script)\b[^>]*\b(src|href)\s*=", re.IGNORECASE),
     "an element loading a file"),
]


def external_references(html: str) -> list[str]:
    """What in ``html`` would reach outside the file (an empty list: self-contained). Links to the
    records' JSON files (``<a href>`` to a relative path) are allowed: the page loads nothing from them."""
    found = [f"{why}: {m.group(0)!r}" for pattern, why in EXTERNAL for m in pattern.finditer(html)]
    for m in re.finditer(r"\b(?:src|href)\s*=\s*\"([^\"]*)\"", html, re.IGNORECASE):
        target = m.group(1)
        if not target.startswith("#") and (target.startswith("/") or ":" in target or not target):
            found.append(f"a reference outside the page: {m.group(0)!r}")
    return found


def test_the_page_is_self_contained(run):
    _, res, files, _ = run
    html = res.html.read_text()
    assert external_references(html) == []
    assert "<style>" in html and "<svg" in html and "<script>" in html
    # Records are linked by relative path, from the report folder to records/.
    assert f'href="../records/{files["a_own"]}"' in html
    assert (res.out_dir / f"../records/{files['a_own']}").resolve().is_file()
    # The checker itself finds each kind of reference.
    for planted in ('<link rel="stylesheet" href="https://cdn.example/x.css">', "<style>@import 'x.css';</style>",
                    '<img src="/etc/logo.png">', "<script>// comment</script>", "background: url(x.png)"):
        assert external_references(html.replace("</body>", planted + "</body>")), planted


def test_an_external_url_in_a_template_fails_the_check(run, tmp_path, monkeypatch):
    root, _, _, zoo = run
    templates = tmp_path / "templates"
    src = Path(render_html.__file__).parent / "templates"
    templates.mkdir()
    for p in src.iterdir():
        text = p.read_text()
        if p.name == "style.css.j2":
            text = "@import url(\"https://fonts.example/inter.css\");\n" + text
        (templates / p.name).write_text(text)
    monkeypatch.setattr(render_html, "environment", lambda: _env(templates))
    res = render_report(root, tmp_path / "out", zoo=zoo)
    assert external_references(res.html.read_text())


def _env(folder: Path):
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder)), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def test_a_missing_template_variable_is_an_error(run, tmp_path, monkeypatch):
    root, res, _, zoo = run
    ctx = render_html.page_context(res.tables)
    env = render_html.environment()
    assert isinstance(env.undefined, type) and issubclass(env.undefined, jinja2.StrictUndefined)
    del ctx["dates"]
    with pytest.raises(jinja2.UndefinedError, match="dates"):
        env.get_template("index.html.j2").render(**ctx)
    # A misspelt row field in a template fails the whole rendering too (no empty cell).
    templates = tmp_path / "templates"
    templates.mkdir()
    for p in (Path(render_html.__file__).parent / "templates").iterdir():
        (templates / p.name).write_text(p.read_text().replace("{{ r.videos }}", "{{ r.video_count }}"))
    monkeypatch.setattr(render_html, "environment", lambda: _env(templates))
    with pytest.raises(jinja2.UndefinedError, match="video_count"):
        render_report(root, tmp_path / "out", zoo=zoo)
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_the_page_shows_every_zoo_entry_and_record(run):
    _, res, _, zoo = run
    html = res.html.read_text()
    for name in zoo:
        assert f'title="{name}"' in html and res.tables.short[name] in html
    for f in (r["_file"] for r in res.tables.used):
        assert f"<code>{f}</code>" in html  # the appendix: one <details> per record
    assert html.count("<details>") >= len(res.tables.used)
    assert "smoke" in html and "full-size" in html


def test_rendering_twice_gives_the_same_page(run):
    root, res, _, zoo = run
    before = res.html.read_bytes()
    again = render_report(root, root / "report", zoo=zoo)
    assert again.html.read_bytes() == before


def _imports(module) -> set[str]:
    import ast

    tree = ast.parse(Path(module.__file__).read_text())
    names = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {f"{n.module}.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    return names


def test_data_flows_one_way_and_no_renderer_reads_a_record():
    """records -> tables (selection) -> renderers: a renderer never loads a record or opens a file, and
    nothing in the chain imports report.py (the old report <-> figures circle) or the measuring code."""
    from i3dbench import figures, fmt, history, render_markdown, report

    renderers = (render_markdown, render_html, figures)
    for mod in renderers:
        names = _imports(mod)
        assert not any(n.endswith(("load_records", "load_history", "load_compares", "report")) for n in names), \
            (mod.__name__, names)
        text = Path(mod.__file__).read_text()
        assert "read_text(" not in text and "json.load" not in text and "open(" not in text, mod.__name__
    for mod in (tables, history, fmt, *renderers):
        assert not any(n.split(".")[-1] == "report" for n in _imports(mod)), mod.__name__
    banned = {"evaluate", "measure", "timing", "train", "memory", "fastpath", "models", "torch"}
    for mod in (report, tables, history, fmt, *renderers):
        assert not {n for n in _imports(mod) if set(n.split(".")) & banned}, mod.__name__

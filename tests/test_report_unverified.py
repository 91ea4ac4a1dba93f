"""The report's accuracy table marks a zoo row whose weights are unverified (the record's
``conditions.checkpoint_verified`` starts with "unverified", as the gate marks it), in markdown
and HTML, with a legend line naming the row and why; verified rows carry no mark."""

from __future__ import annotations

from test_report import _eval, fixture_zoo

from i3dbench import report as R
from i3dbench.records import write_record
from i3dbench.tables import UNVERIFIED_MARK

WHY = "unverified: not the entry's published checkpoint (sha256 0123456789ab...; pass --sha256 to check another file)"


def test_unverified_weights_are_marked_in_the_accuracy_table_with_a_legend_line(tmp_path):
    zoo = fixture_zoo()
    recs = tmp_path / "records"
    write_record(_eval("i3d_a", 72.5, [71.9, 73.1], 90.6, [90.2, 91.0], "2024-06-10T00:00:00+00:00", zoo=zoo,
                       checkpoint_verified=WHY), recs)
    write_record(_eval("i3d_b_1x", 74.6, [74.0, 75.2], 91.7, [91.3, 92.1], "2024-06-10T01:00:00+00:00", zoo=zoo,
                       checkpoint_verified="verified: sha256 prefix c25ef9a4"), recs)
    res = R.render_report(recs, tmp_path / "out", zoo=zoo, history=[])
    t = res.tables
    md = R.zoo_table_markdown(t)
    table_rows = {line.split("|")[1].strip(): line for line in R.accuracy_markdown(t).splitlines()[2:]}
    a, b = t.short["i3d_a"], t.short["i3d_b_1x"]
    assert f"{a} {UNVERIFIED_MARK}" in table_rows, table_rows
    assert b in table_rows and f"{b} {UNVERIFIED_MARK}" not in table_rows
    legend = [line for line in R.accuracy_legend(t).splitlines() if line.startswith(f"- {UNVERIFIED_MARK}")]
    assert len(legend) == 1 and f"`{a}`: {WHY}" in legend[0] and f"`{b}`" not in legend[0], legend
    assert legend[0] in md
    html = (res.out_dir / "index.html").read_text()
    assert f'title="unverified weights: {WHY}">{UNVERIFIED_MARK}</span>' in html.replace("&#39;", "'")
    assert html.count(f">{UNVERIFIED_MARK}</span>") == 1  # only the unverified row
    assert f"{UNVERIFIED_MARK} unverified weights" in html

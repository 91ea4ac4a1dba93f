"""Dataset copies compared by video id across list formats and the Kinetics CSV."""

from __future__ import annotations

import pytest

from i3dbench.data.annotations import AnnotationError, read_rawframe_list, read_video_list
from i3dbench.data.copies import (
    compare_ids,
    describe_comparison,
    id_list_from_records,
    read_id_list,
    restrict_to_reference,
)
from i3dbench.data.synthetic import synthetic_paths

CSV_HEAD = "label,youtube_id,time_start,time_end,split\n"


def _ids(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return read_id_list(path)


@pytest.fixture(scope="session")
def synthetic_root():
    from i3dbench.data.synthetic import ensure_synthetic

    return ensure_synthetic(progress=False)


def test_synthetic_video_list_matches_its_rawframe_list_and_csv(synthetic_root):
    _, videos = synthetic_paths(synthetic_root, "videos", "short256", "val")
    _, frames = synthetic_paths(synthetic_root, "rawframes", "short256", "val")
    listed = id_list_from_records(read_video_list(videos), str(videos))
    for ref in (read_id_list(frames), read_id_list(synthetic_root / "val.csv")):
        c = compare_ids(listed, ref)
        assert (c.num_common, c.missing, c.extra, c.label_mismatches) == (64, [], [], []) and c.identical
    assert read_id_list(frames).format == "rawframes" and read_id_list(synthetic_root / "val.csv").format == "k400_csv"
    assert sum(compare_ids(listed, read_id_list(frames)).matched_by.values()) == 64


def test_stages_path_name_youtube_id(tmp_path):
    listed = _ids(tmp_path, "list.txt",
                  "abseiling/aaaaaaaaaaa_000004_000014.mp4 0\n"  # by name against the CSV
                  "bbbbbbbbbbb.mp4 0\n"  # named by youtube id alone
                  "ccccccccccc_000000_000010.mp4 1\n"  # another time range of ccc: a different clip
                  "x/ddddddddddd_000001_000011.mp4 1\ny/ddddddddddd_000001_000011.mp4 1\n")  # ambiguous name
    ref = _ids(tmp_path, "val.csv", CSV_HEAD + "abseiling,aaaaaaaaaaa,4,14,val\nabseiling,bbbbbbbbbbb,20,30,val\n"
               "bowling,ccccccccccc,30,40,val\nbowling,ddddddddddd,1,11,val\n")
    c = compare_ids(listed, ref)
    assert c.matched == {"abseiling/aaaaaaaaaaa_000004_000014": "aaaaaaaaaaa_000004_000014",
                         "bbbbbbbbbbb": "bbbbbbbbbbb_000020_000030"}
    assert c.matched_by == {"path": 0, "name": 1, "youtube_id": 1}
    assert c.missing == ["ccccccccccc_000030_000040", "ddddddddddd_000001_000011"]
    assert c.extra == ["ccccccccccc_000000_000010", "x/ddddddddddd_000001_000011", "y/ddddddddddd_000001_000011"]
    assert c.label_mismatches == []  # the CSV carries names, not indices


def test_label_mismatch_and_describe(tmp_path):
    listed = _ids(tmp_path, "a.txt", "v1.mp4 0\nv2.mp4 1\nv3.mp4 2\n")
    ref = _ids(tmp_path, "b.txt", "v1 10 0\nv2 10 5\nv4 10 1\n")
    c = compare_ids(listed, ref)
    assert c.label_mismatches == [{"id": "v2", "listed": 1, "reference": 5}] and not c.identical
    lines = describe_comparison(c, first=1)
    assert lines[0].endswith("2 of 3 listed videos shared (matched by path 2), 1 missing, 1 extra")
    assert lines[1:] == ["missing (in the reference, not in a.txt): v4", "extra (in a.txt, not in the reference): v3",
                         "labels differ for 1 shared videos: v2 (1 here, 5 there)"]
    assert describe_comparison(c.to_dict(), first=None) == describe_comparison(c, first=None)


def test_restrict_keeps_list_order_and_returns_dropped(tmp_path):
    (tmp_path / "val.txt").write_text("c.mp4 2\na.mp4 0\nb.mp4 1\n./a.mp4 0\n")
    records = read_video_list(tmp_path / "val.txt")
    (tmp_path / "ref.txt").write_text("a 10 0\nc 10 2\nz 10 3\n")
    r = restrict_to_reference(records, tmp_path / "ref.txt", str(tmp_path / "val.txt"))
    assert [x.path for x in r.kept] == ["c.mp4", "a.mp4", "./a.mp4"]  # both lines of a stay: the list decides
    assert [x.path for x in r.dropped] == ["b.mp4"] and [x.line for x in r.dropped] == [3]
    assert r.comparison.missing == ["z"] and r.comparison.extra == ["b"]
    rawframes = read_rawframe_list(tmp_path / "ref.txt")
    again = restrict_to_reference(rawframes, read_id_list(tmp_path / "val.txt"))
    assert [x.path for x in again.kept] == ["a", "c"] and [x.path for x in again.dropped] == ["z"]


@pytest.mark.parametrize("content,message", [
    (None, "reference list not found"),
    ("", "empty file"),
    (b"\xff\xd8\xff\xe0JFIF", "not a UTF-8 text file"),
    ("a.mp4 0\nb.mp4\n", ":2: expected 2 fields"),
    ("a 10 0\nb ten 1\n", ":2: TOTAL_FRAMES must be an integer"),
    (CSV_HEAD + "bowling,abc,1,11,val\nbowling,,1,11,val\n", ":3: empty youtube_id"),
])
def test_a_reference_is_trusted_only_whole(tmp_path, content, message):
    path = tmp_path / "ref"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(AnnotationError, match=message.replace("(", r"\(")):
        read_id_list(path)

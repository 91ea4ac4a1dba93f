"""Annotation files: MMAction2 lists, the Kinetics CSV, label maps; errors name file and line."""

from __future__ import annotations

import pytest

from i3dbench.data.annotations import (
    AnnotationError,
    VideoRecord,
    csv_to_video_list,
    k400_class_names,
    load_label_map,
    path_problem,
    read_annotation_list,
    read_k400_csv,
    read_rawframe_list,
    read_video_list,
    video_id,
    write_label_map,
    write_video_list,
)

# Rows in the official CSV's shape (real ids from the K400 val CSV's first lines; labels as printed).
K400_CSV = """label,youtube_id,time_start,time_end,split,is_cc
riding a bike,--33Lscn6sk,4,14,val,0
"petting animal (not cat)",--Mby0_ILQg,20,30,val,0
abseiling,-0E7Dwj6fjo,0,10,val,1
air drumming,-3zd3tjgqD0,96.0,106.0,val,0
abseiling,0wR5jVB-WPk,417,427,val,0
"""


def test_video_list_round_trip(tmp_path):
    records = [VideoRecord("a/x.mp4", 3), VideoRecord("y.mp4", 0), VideoRecord("-dash_000001_000011.mp4", 399)]
    write_video_list(tmp_path / "v.txt", records)
    assert (tmp_path / "v.txt").read_text() == "a/x.mp4 3\ny.mp4 0\n-dash_000001_000011.mp4 399\n"
    assert read_video_list(tmp_path / "v.txt") == records
    assert read_annotation_list(tmp_path / "v.txt", "videos") == records


def test_rawframe_list_round_trip_and_blank_lines(tmp_path):
    records = [VideoRecord("abc", 5, 300), VideoRecord("d/e", 0, 12)]
    write_video_list(tmp_path / "r.txt", records)
    assert (tmp_path / "r.txt").read_text() == "abc 300 5\nd/e 12 0\n"
    (tmp_path / "r.txt").write_text("\nabc 300 5\n   \nd/e 12 0\n\n")
    assert read_rawframe_list(tmp_path / "r.txt") == records


@pytest.mark.parametrize(
    "line,message",
    [
        ("only_a_path.mp4", "expected 2 fields"),
        ("a.mp4 1 2", "expected 2 fields"),
        ("a.mp4 cat", "LABEL must be an integer, got 'cat'"),
        ("a.mp4 -1", "LABEL must be >= 0"),
        ("a.mp4 400", "out of range for 400 classes"),
    ],
)
def test_video_list_errors_name_file_line_and_problem(tmp_path, line, message):
    path = tmp_path / "list.txt"
    path.write_text(f"good.mp4 0\n\n{line}\nother.mp4 1\n")
    with pytest.raises(AnnotationError) as info:
        read_video_list(path, num_classes=400)
    err = info.value
    assert (err.file, err.line) == (str(path), 3)
    assert str(err).startswith(f"{path}:3: ") and message in str(err)


def test_rawframe_list_errors(tmp_path):
    path = tmp_path / "raw.txt"
    path.write_text("a 10 1\nb ten 1\nc 10\nd 5 2\n")
    errors: list = []
    records = read_rawframe_list(path, errors=errors)
    assert [r.path for r in records] == ["a", "d"]  # good lines kept
    assert [(e.line, e.message.split(" ")[0]) for e in errors] == [(2, "TOTAL_FRAMES"), (3, "expected")]
    assert "expected 3 fields 'PATH TOTAL_FRAMES LABEL'" in str(errors[1])
    with pytest.raises(AnnotationError, match=r"raw.txt:2: TOTAL_FRAMES must be an integer"):
        read_rawframe_list(path)


def test_missing_or_binary_list(tmp_path):
    with pytest.raises(AnnotationError, match="not found"):
        read_video_list(tmp_path / "nope.txt")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(AnnotationError, match="not a UTF-8 text file"):
        read_video_list(tmp_path / "bin.txt")
    with pytest.raises(ValueError, match="spaces"):
        write_video_list(tmp_path / "x.txt", [VideoRecord("air drumming/a.mp4", 1)])


def test_k400_csv_rows_file_names_and_class_order(tmp_path):
    (tmp_path / "val.csv").write_text(K400_CSV)
    rows = read_k400_csv(tmp_path / "val.csv")
    assert [r.filename for r in rows] == [
        "--33Lscn6sk_000004_000014.mp4",
        "--Mby0_ILQg_000020_000030.mp4",
        "-0E7Dwj6fjo_000000_000010.mp4",
        "-3zd3tjgqD0_000096_000106.mp4",
        "0wR5jVB-WPk_000417_000427.mp4",
    ]
    assert rows[1].label_name == "petting animal (not cat)" and rows[2].is_cc == 1 and rows[0].line == 2
    assert k400_class_names(rows) == ["abseiling", "air drumming", "petting animal (not cat)", "riding a bike"]


def test_k400_csv_without_is_cc_and_any_column_order(tmp_path):
    (tmp_path / "t.csv").write_text("youtube_id,label,split,time_start,time_end\nabc,bowling,train,1,11\n")
    (row,) = read_k400_csv(tmp_path / "t.csv")
    assert (row.filename, row.label_name, row.split, row.is_cc) == ("abc_000001_000011.mp4", "bowling", "train", None)


@pytest.mark.parametrize(
    "row,message",
    [
        ("abseiling,abc,4,x,val,0", "time_end must be a number of seconds"),
        ("abseiling,abc,4.5,14,val,0", "whole, non-negative"),
        ("abseiling,abc,14,4,val,0", "time_end 4 is not after time_start 14"),
        ("abseiling,abc,4,14,val", "expected 6 fields"),
        (",abc,4,14,val,0", "empty label"),
    ],
)
def test_k400_csv_errors(tmp_path, row, message):
    path = tmp_path / "bad.csv"
    path.write_text(K400_CSV + row + "\n")
    with pytest.raises(AnnotationError) as info:
        read_k400_csv(path)
    assert str(info.value).startswith(f"{path}:7: ") and message in str(info.value)
    errors: list = []
    assert len(read_k400_csv(path, errors=errors)) == 5 and len(errors) == 1


def test_k400_csv_header_errors(tmp_path):
    (tmp_path / "h.csv").write_text("label,youtube_id,start,end,split\n")
    with pytest.raises(AnnotationError, match=r"h.csv:1: header lacks column\(s\) \['time_start', 'time_end'\]"):
        read_k400_csv(tmp_path / "h.csv")
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(AnnotationError, match="empty file"):
        read_k400_csv(tmp_path / "e.csv")


def test_label_map(tmp_path):
    write_label_map(tmp_path / "m.txt", ["abseiling", "air drumming"])
    (tmp_path / "m.txt").write_text((tmp_path / "m.txt").read_text() + "\n\n")  # trailing blank lines are fine
    assert load_label_map(tmp_path / "m.txt") == ["abseiling", "air drumming"]
    (tmp_path / "dup.txt").write_text("a\nb\na\n")
    with pytest.raises(AnnotationError, match=r"dup.txt:3: class 'a' already on line 1"):
        load_label_map(tmp_path / "dup.txt")
    (tmp_path / "gap.txt").write_text("a\n\nb\n")
    with pytest.raises(AnnotationError, match=r"gap.txt:2: empty class name"):
        load_label_map(tmp_path / "gap.txt")


def test_csv_to_video_list_finds_files_and_reports_missing(tmp_path):
    (tmp_path / "val.csv").write_text(K400_CSV)
    videos = tmp_path / "videos"
    (videos / "riding_a_bike").mkdir(parents=True)
    (videos / "riding_a_bike" / "--33Lscn6sk_000004_000014.mp4").write_bytes(b"x")  # in a class folder
    (videos / "-0E7Dwj6fjo_000000_000010.mkv").write_bytes(b"x")  # another container
    (videos / "0wR5jVB-WPk.mp4").write_bytes(b"x")  # named by youtube id only
    (videos / "notes.txt").write_text("not a video")
    report = csv_to_video_list(tmp_path / "val.csv", videos, tmp_path / "out" / "val_list.txt")
    assert report.written == 3
    assert [r.stem for r in report.missing] == ["--Mby0_ILQg_000020_000030", "-3zd3tjgqD0_000096_000106"]
    assert (tmp_path / "out" / "val_list.txt").read_text() == (
        "riding_a_bike/--33Lscn6sk_000004_000014.mp4 3\n-0E7Dwj6fjo_000000_000010.mkv 0\n0wR5jVB-WPk.mp4 0\n"
    )
    # With a label map the indices come from it; a class outside it is an error naming the row.
    (tmp_path / "map.txt").write_text("abseiling\nair drumming\npetting animal (not cat)\nriding a bike\nzumba\n")
    csv_to_video_list(tmp_path / "val.csv", videos, tmp_path / "l2.txt", label_map=tmp_path / "map.txt")
    assert (tmp_path / "l2.txt").read_text().splitlines()[0].endswith(" 3")
    with pytest.raises(AnnotationError, match=r"val.csv:2: class 'riding a bike' is not in the label map"):
        csv_to_video_list(tmp_path / "val.csv", videos, tmp_path / "l3.txt", label_map=["abseiling"])


@pytest.mark.parametrize(
    "text,reader,message",
    [
        ("air drumming/x.mp4 3", read_video_list, "PATH 'air drumming/x.mp4' contains whitespace"),
        ("a b  c.mp4 3", read_video_list, "PATH 'a b  c.mp4' contains whitespace"),
        ("air drumming/x 300 3", read_rawframe_list, "PATH 'air drumming/x' contains whitespace"),
        ("x 300 3", read_video_list, "(a rawframes line 'DIR TOTAL_FRAMES LABEL': is this a rawframes list?)"),
        ("x.mp4 3", read_rawframe_list, "(a video list line 'PATH LABEL': is this a video list?)"),
    ],
)
def test_spaced_paths_and_wrong_formats_are_named(tmp_path, text, reader, message):
    path = tmp_path / "list.txt"
    path.write_text(f"ok.mp4 0\n{text}\n" if reader is read_video_list else f"ok 9 0\n{text}\n")
    with pytest.raises(AnnotationError) as info:
        reader(path)
    assert str(info.value).startswith(f"{path}:2: ") and message in str(info.value)


def test_records_remember_their_line_without_changing_equality(tmp_path):
    (tmp_path / "l.txt").write_text("\n\na.mp4 1\n\nb.mp4 2\n")
    records = read_video_list(tmp_path / "l.txt")
    assert [r.line for r in records] == [3, 5]
    assert records == [VideoRecord("a.mp4", 1), VideoRecord("b.mp4", 2)]


def test_a_folder_is_not_a_list(tmp_path):
    with pytest.raises(AnnotationError, match="is a folder, not a list file"):
        read_rawframe_list(tmp_path)


@pytest.mark.parametrize(
    "path,problem",
    [
        ("a/b.mp4", None),
        ("a/../b.mp4", None),  # stays inside
        ("./b", None),
        ("-x_000001_000011.mp4", None),
        ("", "PATH is empty"),
        ("..", "leaves the data root"),
        ("../b.mp4", "leaves the data root"),
        ("a/../../b.mp4", "leaves the data root"),
        ("/data/k400/b.mp4", "is absolute"),
        (".", "names the data root itself"),
        ("a/.", None),
        ("a b.mp4", "contains whitespace"),
        ("a\x00b.mp4", "control character"),
    ],
)
def test_path_problem(path, problem):
    got = path_problem(path)
    assert (got is None) if problem is None else (problem in got), got


@pytest.mark.parametrize(
    "path,format,vid",
    [
        ("a/x.mp4", "videos", "a/x"),
        ("./a/x.MKV", "videos", "a/x"),
        ("a/x", "rawframes", "a/x"),
        ("a/x.v2", "rawframes", "a/x.v2"),  # a dot in a frame folder's name is not an extension
        ("a/x.mp4", "rawframes", "a/x"),
        ("a.b/x", "videos", "a.b/x"),
    ],
)
def test_video_id(path, format, vid):
    assert video_id(path, format) == vid


def test_a_byte_order_mark_is_not_part_of_the_first_path_or_header(tmp_path):
    """Lists and CSVs saved by Windows editors start with a UTF-8 BOM."""
    (tmp_path / "l.txt").write_bytes("\ufeffa.mp4 1\n".encode())
    assert read_video_list(tmp_path / "l.txt")[0].path == "a.mp4"
    (tmp_path / "k.csv").write_bytes(("\ufeff" + K400_CSV).encode())
    assert read_k400_csv(tmp_path / "k.csv")[0].youtube_id == "--33Lscn6sk"

"""Records checked against an entry and a data root; build_dataset refuses what cannot be run."""

from __future__ import annotations

import dataclasses

import pytest

from i3dbench.data.annotations import AnnotationError, VideoRecord, read_rawframe_list, read_video_list
from i3dbench.data.dataset import build_dataset
from i3dbench.data.synthetic import VideoSpec, render_video, write_h264, write_jpegs
from i3dbench.data.validate import (
    DataRootError,
    entry_clip_span,
    largest_clip_span,
    require_data_root,
    validate_records,
)
from i3dbench.errors import UserError
from i3dbench.zoo import get_entry, load_zoos

VIDEO = get_entry("smoke_i3d_tiny_video")  # videos, 8 classes, span 29
RAW = get_entry("smoke_i3d_tiny_rawframes_lazy")  # rawframes, 8 classes, span 29


def _frames(n: int):
    spec = VideoSpec("v", "val", 0, "moving left", 1, n, "rectangle", 0.5, (20, 240, 20), 0.15, 0.9, 0.5, 10.0, 0.01)
    return render_video(spec, 64, 48)


def test_clip_spans_of_the_zoo():
    zoo = load_zoos()
    assert entry_clip_span(zoo["i3d_r50_32x2x1_100e_kinetics400_rgb"]) == 63  # (32 - 1) * 2 + 1
    assert entry_clip_span(zoo["i3d_r50_dense_32x2x1_100e_kinetics400_rgb"]) == 64  # the dense sample range
    assert entry_clip_span(VIDEO) == 29
    span, name = largest_clip_span(zoo)
    assert span == 64 and "dense" in name
    # A dense entry with 4 clips reaches (4 - 1) * 16 + 63 frames from one start.
    wide = dataclasses.replace(zoo["i3d_r50_dense_32x2x1_100e_kinetics400_rgb"],
                               data=dataclasses.replace(zoo["i3d_r50_dense_32x2x1_100e_kinetics400_rgb"].data, num_clips=4))
    assert entry_clip_span(wide) == 111


def test_errors_and_warnings_name_line_field_and_value(tmp_path):
    ann = tmp_path / "list.txt"
    ann.write_text("a.mp4 0\nb.mp4 7\n../../etc/passwd 1\n/etc/hostname 2\na.mp4 3\nc.mp4 9\n")
    records = read_video_list(ann)
    (tmp_path / "a.mp4").write_bytes(b"x")
    v = validate_records(records, VIDEO, tmp_path, ann)
    assert not v.ok
    assert [(p.kind, p.line, p.field, p.value) for p in v.errors] == [
        ("bad_path", 3, "PATH", "../../etc/passwd"), ("bad_path", 4, "PATH", "/etc/hostname"), ("bad_label", 6, "LABEL", "9")]
    assert str(v.errors[2]).startswith(f"{ann}:6: LABEL 9 of 'c.mp4' is outside the 8 classes (0..7)")
    kinds = [(p.kind, p.line) for p in v.warnings]
    assert ("duplicate", 5) in kinds and ("missing", 2) in kinds and ("missing", 6) in kinds
    assert ("missing", 1) not in kinds  # a.mp4 exists
    assert not any(p.line in (3, 4) for p in v.warnings)  # escaping paths are never looked up
    text_only = validate_records(records, VIDEO, tmp_path, ann, check_files=False)
    assert [p.kind for p in text_only.warnings] == ["duplicate"]


def test_rawframes_counts_and_short_videos_are_warnings(tmp_path):
    for name, n in (("f_ok", 30), ("f_short", 6), ("f_liar", 30)):
        write_jpegs(tmp_path / name, _frames(n))
    ann = tmp_path / "raw.txt"
    ann.write_text("f_ok 30 0\nf_short 6 1\nf_liar 40 2\ngone 30 3\n")
    v = validate_records(read_rawframe_list(ann), RAW, tmp_path, ann)
    assert v.ok and not v.errors
    got = {(p.kind, p.line) for p in v.warnings}
    assert got == {("too_short", 2), ("count_mismatch", 3), ("missing", 4)}
    liar = next(p for p in v.warnings if p.kind == "count_mismatch")
    assert (liar.field, liar.value) == ("TOTAL_FRAMES", "40") and "its folder holds 30" in liar.message


def test_empty_list_is_an_error(tmp_path):
    v = validate_records([], VIDEO, tmp_path, tmp_path / "l.txt")
    assert [p.kind for p in v.errors] == ["empty"]
    with pytest.raises(AnnotationError, match="holds no video"):
        v.raise_errors()


def test_raise_errors_names_the_first_and_counts_the_rest(tmp_path):
    records = [VideoRecord("../x.mp4", 0, line=4), VideoRecord("y.mp4", 99, line=7)]
    with pytest.raises(AnnotationError) as info:
        validate_records(records, VIDEO, tmp_path, "val.txt", check_files=False).raise_errors(hint="see data check")
    assert str(info.value).startswith("val.txt:4: PATH '../x.mp4' leaves the data root")
    assert str(info.value).endswith("(and 1 more error(s); see data check)")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    write_h264(root / "v0.mp4", _frames(32))
    write_jpegs(root / "f0", _frames(32))
    return root


@pytest.mark.parametrize("split", ["train", "val", "test"])
@pytest.mark.parametrize("line,what", [
    ("../v0.mp4 0", "leaves the data root"),
    ("/etc/passwd 0", "is absolute"),
    ("v0.mp4 8", "LABEL 8 is out of range for 8 classes"),
])
def test_build_dataset_refuses_every_split(tiny, tmp_path, split, line, what):
    ann = tmp_path / "list.txt"
    ann.write_text(f"v0.mp4 1\n{line}\n")
    with pytest.raises(AnnotationError) as info:
        build_dataset(VIDEO, split, tiny, ann)
    assert str(info.value).startswith(f"{ann}:2: ") and what in str(info.value)


def test_build_dataset_refuses_escaping_frame_dirs_and_empty_lists(tiny, tmp_path):
    ann = tmp_path / "raw.txt"
    ann.write_text("f0 32 0\nf0/../../f0 32 1\n")
    with pytest.raises(AnnotationError, match=r"raw.txt:2: PATH 'f0/../../f0' leaves the data root"):
        build_dataset(RAW, "val", tiny, ann)
    ann.write_text("\n")
    with pytest.raises(AnnotationError, match="holds no video"):
        build_dataset(RAW, "test", tiny, ann)
    ann.write_text("f0 32 0\n./f0 32 1\n")  # a duplicate is only a warning: the dataset is built
    assert len(build_dataset(RAW, "val", tiny, ann)) == 2


def test_missing_data_root_is_a_user_error(tmp_path):
    with pytest.raises(DataRootError) as info:
        require_data_root(tmp_path / "nowhere", "val.txt")
    assert isinstance(info.value, UserError) and isinstance(info.value, FileNotFoundError)
    assert "nowhere is not a directory (does not exist)" in str(info.value) and "val.txt" in str(info.value)

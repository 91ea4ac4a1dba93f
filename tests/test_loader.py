"""loader.py and evaluate_many: frames handed over, views built by the evaluating process, one
decode for every model that shares an input — and the same pixels and predictions as before."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from i3dbench.data.dataset import DecodedVideo, build_dataset
from i3dbench.data.transforms import normalize
from i3dbench.evaluate import EvalSpec, evaluate, evaluate_many
from i3dbench.loader import group_by_input, input_key, views_from_decoded
from i3dbench.runner import smoke_data
from i3dbench.zoo import get_entry, load_zoos

VIDEO = "smoke_i3d_tiny_video"
NL = "smoke_i3d_nl_tiny_video"
RAW = "smoke_i3d_tiny_rawframes_lazy"


def _entry(name, **data):
    e = get_entry(name)
    return dataclasses.replace(e, data=dataclasses.replace(e.data, **data)) if data else e


@pytest.mark.parametrize("name, data", [
    (VIDEO, {}),  # resize 256 -> 48 on the tensor backend
    (VIDEO, {"resize_backend": "cv2"}),
    (RAW, {}),
    (VIDEO, {"resize_short": 256}),  # 340x256 frames: no resize at all (the Kinetics case)
])
def test_views_from_handed_over_frames_are_bitwise_the_per_view_path(name, data):
    entry = _entry(name, **data)
    if data.get("resize_short") == 256:
        entry = dataclasses.replace(entry, test=dataclasses.replace(entry.test, crop_size=256))
    root, ann = smoke_data(entry)
    per_view = build_dataset(entry, "test", root, ann)
    frames = build_dataset(entry, "test", root, ann, handover="frames")
    for i in (0, 5, 17):
        views, label, index = per_view[i]
        decoded, label2, index2 = frames[i]
        assert isinstance(decoded, DecodedVideo) and (label, index) == (label2, index2) == (decoded.label, i)
        # native resolution, each distinct frame once
        assert decoded.frames.shape[1:3] == (256, 340) and decoded.frames.dtype == torch.uint8
        assert decoded.frames.shape[0] <= decoded.clips.size
        expected = normalize(views, entry.data.mean, entry.data.std)
        got = views_from_decoded(decoded, entry, "cpu")
        assert got.dtype == torch.float32 and got.shape == expected.shape
        assert torch.equal(got, expected)  # bitwise
        assert torch.equal(views_from_decoded(decoded, entry, "cpu", normalize=False), views)


def test_input_key_groups_entries_that_share_their_test_input():
    zoo = load_zoos()
    smoke = [zoo[VIDEO], zoo[NL], zoo[RAW]]
    assert input_key(zoo[VIDEO]) == input_key(zoo[NL]) != input_key(zoo[RAW])
    assert [[e.name for e in g] for g in group_by_input(smoke)] == [[VIDEO, NL], [RAW]]
    k400 = [e for e in zoo.values() if e.dataset == "kinetics400"]
    groups = group_by_input(k400)
    # the five 0.x short-side-256 rawframe rows share one input (plain, NL x3 ... see the zoo)
    sizes = sorted(len(g) for g in groups)
    assert sum(sizes) == len(k400) and max(sizes) >= 4
    for g in groups:  # members really share every setting that decides the views
        assert len({(e.data.format, e.data.resolution, e.test.sampler_version, e.data.sampler) for e in g}) == 1
    changed = dataclasses.replace(zoo[VIDEO], test=dataclasses.replace(zoo[VIDEO].test, sampler_version="0.x"))
    assert input_key(changed) != input_key(zoo[VIDEO])


def test_models_sharing_an_input_give_their_separate_predictions_bit_for_bit(tmp_path):
    root, ann = smoke_data(get_entry(VIDEO))
    together = evaluate_many([EvalSpec(VIDEO), EvalSpec(NL)], root, ann, out=tmp_path / "together", num_workers=0,
                             progress=False)
    alone = [evaluate(n, root, ann, out=tmp_path / f"alone-{n}", num_workers=0, progress=False) for n in (VIDEO, NL)]
    for t, a in zip(together, alone):
        assert t.entry == a.entry and t.run_key == a.run_key and t.metrics == a.metrics
        assert t.predictions_path.read_bytes() == a.predictions_path.read_bytes()
        assert t.record_path.parent == tmp_path / "together" / "records"


def test_evaluate_many_counts_decodes_once_per_video(tmp_path, monkeypatch):
    from i3dbench.data import dataset as D

    calls = []
    real = D.ClipDataset.decode

    def counting(self, index):
        calls.append(index)
        return real(self, index)

    monkeypatch.setattr(D.ClipDataset, "decode", counting)
    root, ann = smoke_data(get_entry(VIDEO))
    res = evaluate_many([VIDEO, NL], root, ann, out=tmp_path, num_workers=0, progress=False)
    assert sorted(calls) == list(range(res[0].num_listed))  # 64 videos decoded once for two models


def test_each_model_keeps_its_own_resume_state(tmp_path):
    root, ann = smoke_data(get_entry(VIDEO))
    first = evaluate(VIDEO, root, ann, out=tmp_path, num_workers=0, progress=False)
    # An interrupted evaluation of the first entry only: 10 rows left in a partial file.
    lines = first.predictions_path.read_text().splitlines(keepends=True)
    partial = first.predictions_path.with_name(first.predictions_path.name.replace(".jsonl", ".partial.jsonl"))
    partial.write_text("".join(lines[:10]))
    first.predictions_path.unlink()
    both = evaluate_many([VIDEO, NL], root, ann, out=tmp_path, num_workers=0, progress=False)
    assert both[0].obtained == {"how": "resumed", "rows_reused": 10, "reused_from": [str(partial.resolve())],
                                "rows_computed": 54}
    assert both[1].obtained["how"] == "computed"
    assert both[0].metrics == first.metrics
    rows = [json.loads(x)["i"] for x in both[0].predictions_path.read_text().splitlines()]
    assert rows == list(range(64))  # exactly one row per video


def test_entries_with_different_inputs_are_refused_together(tmp_path):
    from i3dbench.errors import UsageError

    root, ann = smoke_data(get_entry(VIDEO))
    with pytest.raises(UsageError, match="different test inputs"):
        evaluate_many([VIDEO, RAW], root, ann, out=tmp_path, num_workers=0, progress=False)
    with pytest.raises(UsageError, match="listed twice"):
        evaluate_many([VIDEO, VIDEO], root, ann, out=tmp_path, num_workers=0, progress=False)


def test_views_are_written_into_a_reused_buffer_when_it_fits():
    entry = get_entry(VIDEO)
    root, ann = smoke_data(entry)
    frames = build_dataset(entry, "test", root, ann, handover="frames")
    first = views_from_decoded(frames[0][0], entry, "cpu")
    second_fresh = views_from_decoded(frames[1][0], entry, "cpu")
    got = views_from_decoded(frames[1][0], entry, "cpu", out=first)
    assert got.data_ptr() == first.data_ptr() and torch.equal(got, second_fresh)
    # a buffer of another shape or dtype is not used
    small = torch.zeros(2, 3)
    assert torch.equal(views_from_decoded(frames[1][0], entry, "cpu", out=small), second_fresh)
    assert not small.any()
    as_uint8 = views_from_decoded(frames[1][0], entry, "cpu", normalize=False, out=first)
    assert as_uint8.dtype == torch.uint8 and as_uint8.data_ptr() != first.data_ptr()


def test_several_videos_per_step_each_get_their_own_views(tmp_path):
    """The reused views buffers are per video of a batch: with 3 videos per forward step, each
    video's predictions are its own (the same classes, and scores within float tolerance of
    one video per step)."""
    entry = get_entry(VIDEO)
    root, ann = smoke_data(entry)
    one = evaluate(VIDEO, root, ann, out=tmp_path / "one", num_workers=0, progress=False)
    three = evaluate(VIDEO, root, ann, out=tmp_path / "three", num_workers=0, progress=False,
                     batch_views=3 * entry.views_per_video)
    rows = [[json.loads(line) for line in r.predictions_path.read_text().splitlines()] for r in (one, three)]
    assert len(rows[0]) == len(rows[1]) == one.num_listed
    for a, b in zip(*(sorted(r, key=lambda row: row["i"]) for r in rows)):
        assert a["top5"] == b["top5"], (a["video"], a["top5"], b["top5"])
        assert max(abs(x - y) for x, y in zip(a["scores"], b["scores"])) < 1e-4
    assert one.metrics["top1"] == three.metrics["top1"]

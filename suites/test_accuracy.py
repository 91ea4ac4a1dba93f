"""test_accuracy[entry]: evaluate with the published test protocol and compare (heavy suite).

* Kinetics-400 entries need a copy (``I3DBENCH_K400_ROOT`` + ``I3DBENCH_K400_ANN``, a video or
  rawframe list matching the entry's format) and the published checkpoint (downloaded into
  the cache, or already there); otherwise they are skipped with that reason. Pass: measured
  top-1 and top-5 within the entry's tolerance of the published values, accounting for the CI.
* Smoke entries use the synthetic set and the smoke checkpoint in the cache (trained here
  with the entry's recipe when absent). Pass: every video evaluated and the 95% CI of top-1
  entirely above chance — the recipe and the evaluation work together end to end.
Each run writes an ``eval`` record.
"""

from __future__ import annotations

import pytest

from i3dbench.evaluate import evaluate
from i3dbench.runner import k400_copy, smoke_checkpoint, smoke_data

pytestmark = pytest.mark.heavy


def _k400_inputs(entry):
    copy = k400_copy()
    if copy is None:
        pytest.skip("needs a Kinetics-400 copy: set I3DBENCH_K400_ROOT (data folder) and I3DBENCH_K400_ANN (its list)")
    root, ann, fmt = copy
    if fmt != entry.data.format:
        pytest.skip(f"the Kinetics-400 copy at {root} holds {fmt}; {entry.name} reads {entry.data.format}")
    from i3dbench.checkpoints import download

    try:
        ckpt = download(entry.checkpoint.url)
    except Exception as err:  # noqa: BLE001 - offline, or the file moved: skip with the reason
        pytest.skip(f"published checkpoint not available ({type(err).__name__}: {err})")
    return root, ann, ckpt


def test_accuracy(zoo_entry, device, records_dir, written_records):
    e = zoo_entry
    if e.dataset == "synthetic":
        data_root, ann = smoke_data(e)
        ckpt = smoke_checkpoint(e, train_if_missing=True, device=device, records_dir=records_dir)
    else:
        data_root, ann, ckpt = _k400_inputs(e)
    res = evaluate(e, data_root, ann, checkpoint=ckpt, device=device, records_dir=records_dir,
                   num_workers=1 if e.dataset == "synthetic" else 4)
    written_records.append(res.record_path)
    m = res.metrics
    print(f"{e.name}: top-1 {m['top1']:.2f} (CI {m['top1_ci'][0]:.2f}-{m['top1_ci'][1]:.2f}), top-5 {m['top5']:.2f}, "
          f"{res.num_evaluated} of {res.num_listed} videos; record {res.record_path}")
    if e.dataset == "synthetic":
        assert res.num_evaluated == res.num_listed, f"decode failures: {res.failures[:3]}"
        chance = 100.0 / e.arch.num_classes
        assert m["top1_ci"][0] > chance, f"top-1 CI {m['top1_ci']} does not clear chance ({chance:.1f} %)"
    else:
        outside = {k: c for k, c in res.comparison.items() if not c["within"]}
        assert not outside, f"outside the published tolerance: {outside}"

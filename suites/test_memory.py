"""test_memory[entry]: peak memory of inference and of training at the published batch (heavy suite).

The measure module does the work (random weights): inference is one published-protocol
video; training is the recipe's batch (8 videos of 3 x clip_len x train_crop^2) through
forward, backward, gradient clipping and an SGD step. On CUDA that is ``max_memory_allocated``
(the published gpu_mem is this training figure, MiB) and it must not exceed the published
value by more than the entry's ``memory_rel`` tolerance; on CPU the peak resident memory the
measurement added (one entry per architecture: the others share its numbers). A ``bench``
record with protocol ``memory`` is written per entry.
"""

from __future__ import annotations

import pytest
import torch

from i3dbench import measure
from i3dbench.gate import memory_check
from i3dbench.records import collect_conditions, make_record, write_record

pytestmark = pytest.mark.heavy
_MEASURED: dict = {}


def test_memory(zoo_entry, device, records_dir, written_records):
    e, dev = zoo_entry, torch.device(device)
    if dev.type == "cpu" and e.dataset != "synthetic":
        key = measure.architecture_key(e)
        if key in _MEASURED:
            pytest.skip(f"CPU budget: same architecture and input shapes as {_MEASURED[key]}, measured there")
        _MEASURED[key] = e.name
    mem = measure.measure_memory(e, device=dev, train=True, inference=True)
    cond = collect_conditions(dev, precision="fp32", batch=mem.train_batch, views=e.views_per_video)
    extra = {"protocol": "memory", "weights": "random", "memory_kind": mem.kind,
             "memory": {"train_batch": mem.train_batch, "train_steps": mem.train_steps,
                        "train_input": list(mem.train_input) if mem.train_input else None, "details": mem.details}}
    written_records.append(write_record(make_record(e.name, "bench", mem.metrics(), cond, extra), records_dir))
    print(f"{e.name} on {cond['device_name']}: inference {mem.inference_mb} MB, train (batch {mem.train_batch}) "
          f"{mem.train_mb} MB [{mem.kind}]")

    assert "train_oom" not in mem.details, mem.details.get("train_oom")
    assert mem.inference_mb is not None and mem.train_mb is not None
    if dev.type == "cuda" and e.published.gpu_mem_mb:
        check = memory_check(e, (e.name, "bench", cond["device_name"], "memory"), "train_memory_mb",
                             mem.train_mb, e.published.gpu_mem_mb, "published")
        assert check.status != "REGRESSED", f"{e.name}: training peak {mem.train_mb} MB vs published " \
                                            f"{e.published.gpu_mem_mb} MB ({check.allowed})"

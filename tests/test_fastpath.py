"""fastpath.py: conv-BN folding is exact, the fast model agrees with fp32, OOM back-off, compile fallback.

Small models only (the smoke I3D: 8 base channels), so the file runs in seconds on 2 cores.
Speed is never asserted here (see suites/test_speed.py for side-by-side ratios).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from i3dbench import fastpath as F
from i3dbench.models import build_model

SMOKE = "smoke_i3d_tiny_video"
SMOKE_NL = "smoke_i3d_nl_tiny_video"
MEAN, STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models on a shared machine: one thread avoids OpenMP barrier stalls (and is faster)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _trained_like(name: str, seed: int = 0) -> nn.Module:
    """A smoke model whose BN layers look trained (non-trivial statistics and affine), so that
    folding has something to fold, including the non-local block's zero-initialised output BN."""
    torch.manual_seed(seed)
    model = build_model(name).eval()
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm3d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
    return model


def _views(n: int = 4, seed: int = 1) -> torch.Tensor:
    return torch.randn((n, 3, 8, 64, 64), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", [SMOKE, SMOKE_NL])
def test_fold_conv_bn_is_exact_in_fp32(name):
    model = _trained_like(name)
    x = _views()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded, pairs = F.fold_conv_bn(model)
    assert pairs == sum(isinstance(m, nn.BatchNorm3d) for m in model.modules()) > 0
    assert not any(isinstance(m, nn.BatchNorm3d) for m in folded.modules())
    with torch.no_grad():
        ref, out = model(x), folded(x)
    scale = ref.abs().max().item()
    assert torch.allclose(out, ref, rtol=1e-5, atol=1e-5 * scale), (out - ref).abs().max().item()
    # the source model is untouched
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_fold_handles_generic_conv_bn_pairs_and_refuses_non_pairs():
    class Unit(nn.Module):
        def __init__(self, c_out, bn_features):
            super().__init__()
            self.conv = nn.Conv2d(3, c_out, 3, padding=1, bias=True)
            self.bn = nn.BatchNorm2d(bn_features)

        def forward(self, x):
            return self.bn(self.conv(x))

    unit = Unit(5, 5)
    unit.bn.running_mean.uniform_(-1, 1)
    unit.bn.running_var.uniform_(0.5, 2)
    unit.eval()
    x = torch.randn(2, 3, 8, 8)
    folded, pairs = F.fold_conv_bn(unit)
    assert pairs == 1
    assert torch.allclose(folded(x), unit(x), atol=1e-5)

    with pytest.raises(ValueError, match="not a conv->bn pair"):
        F.fold_conv_bn(Unit(5, 4))
    no_stats = Unit(5, 5)
    no_stats.bn = nn.BatchNorm2d(5, track_running_stats=False)
    with pytest.raises(ValueError, match="running statistics"):
        F.fold_conv_bn(no_stats)


def test_uint8_views_are_normalised_on_the_device_like_the_pipeline():
    model = _trained_like(SMOKE)
    raw = torch.randint(0, 256, (3, 3, 8, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    norm = (raw.float() - torch.tensor(MEAN).view(1, 3, 1, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1, 1)
    fm = F.prepare_model(model, "cpu", F.FastConfig(), mean=MEAN, std=STD)
    with torch.no_grad():
        ref = model(norm)
    assert torch.allclose(fm(raw), ref, rtol=1e-5, atol=1e-5)
    assert torch.allclose(fm(norm), ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="mean/std"):
        F.prepare_model(model, "cpu", F.FastConfig())(raw)


def test_fp32_folded_channels_last_matches_plain_model():
    model = _trained_like(SMOKE_NL)
    x = _views()
    fm = F.prepare_model(model, "cpu", F.FastConfig(memory_format="channels_last_3d", fold_bn=True))
    with torch.no_grad():
        ref = model(x)
    out = fm(x)
    assert out.dtype == torch.float32
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
    cond = fm.conditions()
    assert cond["fold_bn"] and cond["folded_pairs"] > 0 and cond["memory_format"] == "channels_last_3d"
    assert cond["inference_mode"] and cond["compile"] is False and cond["threads"] == torch.get_num_threads()


@pytest.mark.parametrize("name", [SMOKE, SMOKE_NL])
def test_bf16_fast_path_agrees_with_fp32(name):
    """bf16 changes the rounding, not the answer: logits within a few percent of their spread,
    and the same argmax wherever the fp32 top-2 margin exceeds twice the largest bf16 error."""
    model = _trained_like(name)
    x = _views(16)
    fm = F.prepare_model(model, "cpu", F.FastConfig(precision="bf16", memory_format="channels_last_3d", fold_bn=True))
    with torch.no_grad():
        ref = model(x)
    out = fm(x)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    err = (out - ref).abs().max().item()
    assert err < 0.05 * ref.std().item()
    top2 = ref.topk(2, dim=-1).values
    clear = (top2[:, 0] - top2[:, 1]) > 2 * err
    assert clear.sum() >= 4
    assert torch.equal(out.argmax(-1)[clear], ref.argmax(-1)[clear])


def test_failed_compile_falls_back_to_eager_and_says_so(monkeypatch):
    class Broken(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self._orig_mod = inner

        def forward(self, x):
            raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(torch, "compile", lambda module, **kw: Broken(module))
    model = _trained_like(SMOKE)
    fm = F.prepare_model(model, "cpu", F.FastConfig(compile=True))
    assert fm.compiled
    x = _views(2)
    with torch.no_grad():
        ref = model(x)
    assert torch.allclose(fm(x), ref, rtol=1e-5, atol=1e-5)
    cond = fm.conditions()
    assert cond["compile"] is False and "no C++ compiler" in cond["compile_error"]


def test_oom_backoff_halves_until_it_fits():
    calls = []

    def fn(batch):
        calls.append(batch)
        if batch > 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (fake)")
        return f"ran {batch}"

    told = []
    result, used, failed = F.run_with_oom_backoff(fn, 16, on_backoff=lambda a, b: told.append((a, b)))
    assert (result, used, failed) == ("ran 2", 2, [16, 8, 4])
    assert calls == [16, 8, 4, 2] and told == [(16, 8), (8, 4), (4, 2)]


def test_oom_backoff_reraises_at_the_floor_and_passes_other_errors():
    def always_oom(batch):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes")

    with pytest.raises(RuntimeError, match="can't allocate"):
        F.run_with_oom_backoff(always_oom, 8, min_batch=2)

    def bad(batch):
        raise ValueError("shape mismatch")

    with pytest.raises(ValueError, match="shape mismatch"):
        F.run_with_oom_backoff(bad, 8)
    assert F.is_oom(torch.OutOfMemoryError("x")) and not F.is_oom(ValueError("out of memory"))


def test_autotune_returns_a_candidate_with_its_times():
    model = _trained_like(SMOKE)
    cands = [F.FastConfig(), F.FastConfig(memory_format="channels_last_3d", fold_bn=True)]
    sample = torch.randint(0, 256, (2, 3, 8, 64, 64), dtype=torch.uint8)
    best, times = F.autotune(model, sample, cands, rounds=1, mean=MEAN, std=STD)
    assert best in cands
    assert set(times) == {"fp32@2", "fp32-cl3d-fold@2"} or set(times) == {"fp32@1", "fp32-cl3d-fold@1"}
    first, second = (times[k] for k in sorted(times, key=len))  # "fp32@n" is the preferred one
    assert best == (cands[1] if second < 0.9 * first else cands[0])  # later candidates need a 10% lead
    same, _ = F.autotune(model, sample, [cands[0], cands[0].replace(threads=1)], rounds=1, margin=10.0, mean=MEAN, std=STD)
    assert same == cands[0]  # an impossible margin: the first (preferred) candidate stays


def test_thread_count_is_a_lever_that_autotune_leaves_as_it_found_it():
    torch.set_num_threads(2)
    cands = F.cpu_candidates(try_one_thread=True)
    assert cands[-1].threads == 1 and all(c.threads is None for c in cands[:-1])
    assert F.config_label(cands[-1]).endswith("-1thr")
    model = _trained_like(SMOKE)
    fm = F.prepare_model(model, "cpu", F.FastConfig(threads=1))
    assert torch.get_num_threads() == 2  # preparing does not touch it
    out = fm(_views(2))
    assert torch.get_num_threads() == 1 and fm.conditions()["threads"] == 1 and out.shape == (2, 8)
    torch.set_num_threads(2)
    seen = []
    call = F.FastModel.__call__

    def spy(self, views):
        seen.append((self.config.threads, torch.get_num_threads()))
        return call(self, views)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(F.FastModel, "__call__", spy)
        F.autotune(model, _views(2), [F.FastConfig(), F.FastConfig(threads=1)], rounds=3)
    # the 1-thread candidate's setting never leaks into the other's calls
    assert {n for t, n in seen if t is None} == {2}
    assert torch.get_num_threads() == 2


def test_default_configs():
    cpu = F.default_fast_config("cpu")
    assert cpu.fold_bn and cpu.memory_format == "channels_last_3d" and not cpu.compile
    assert cpu.precision == ("bf16" if F.cpu_supports_bf16() else "fp32")
    cuda = F.default_fast_config("cuda")
    assert cuda.precision == "bf16" and cuda.autocast and cuda.cudnn_benchmark and cuda.compile and cuda.fold_bn
    pub = F.published_config()
    assert pub.precision == "fp32" and not pub.fold_bn and not pub.compile and pub.memory_format == "contiguous"
    with pytest.raises(ValueError, match="precision"):
        F.FastConfig(precision="int8")

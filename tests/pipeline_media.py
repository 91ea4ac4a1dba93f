"""Test media for the pipeline tests (sampling / transforms / dataset), made on the fly.

``smooth_frames`` uses integer arithmetic only, so the same seed gives the same bytes on
every machine; dev/make_golden_transforms.py feeds the same frames to MMAction2.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def smooth_frames(seed: int, t: int, h: int, w: int, cell: int = 8, noise: int = 4) -> np.ndarray:
    """``t x h x w x 3`` uint8: a random grid bilinearly upsampled by ``cell`` (exact integer
    weights) plus uniform noise in ``[-noise, noise]``: random but smooth, like video."""
    rng = np.random.default_rng(seed)
    gh, gw = h // cell + 2, w // cell + 2
    grid = rng.integers(0, 256, (t, gh, gw, 3), dtype=np.int64)
    ys, xs = np.arange(h), np.arange(w)
    y0, fy = ys // cell, (ys % cell)[None, :, None, None]
    x0, fx = xs // cell, (xs % cell)[None, None, :, None]
    rows = grid[:, y0] * (cell - fy) + grid[:, y0 + 1] * fy  # t x h x gw x 3
    img = rows[:, :, x0] * (cell - fx) + rows[:, :, x0 + 1] * fx
    img = img // (cell * cell) + rng.integers(-noise, noise + 1, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_mp4(path: Path, frames: np.ndarray, fps: int = 25) -> Path:
    """Encode ``T x H x W x 3`` uint8 RGB frames as H.264 mp4 with PyAV (near-lossless)."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "10", "preset": "ultrafast", "g": "16"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path

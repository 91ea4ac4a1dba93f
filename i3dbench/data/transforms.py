"""Clip geometry and normalisation: MMAction2's Resize, MultiScaleCrop, Flip, CenterCrop,
ThreeCrop, Fuse (lazy mode), FormatShape and its data preprocessor's Normalize.

Everything works on a whole clip at once: a ``torch.uint8`` tensor ``T x H x W x 3`` (RGB,
as the decoders return it), on the CPU or a CUDA device. Crop boxes are ``(x1, y1, x2, y2)``
pixel corners (MMAction2's ``crop_bbox`` order), so ``clip[:, y1:y2, x1:x2]`` is the crop.

Parity with MMAction2 1.2.0:
- output sizes and crop boxes are computed with MMAction2's integer/float arithmetic and are
  identical; the random choices (which MultiScaleCrop size and corner, flip or not) are made
  with the same calls, so a ``random.Random`` / ``numpy.random.RandomState`` in the state
  MMAction2's global ``random`` / ``np.random`` was in gives the same boxes and flips;
- pixels: MMAction2 resizes with ``mmcv.imresize`` = OpenCV's ``cv2.resize(INTER_LINEAR)``
  (half-pixel centres, no antialiasing, 11-bit fixed-point weights). Two resize backends, a
  protocol setting (an entry's ``data.resize_backend``): ``"cv2"`` calls exactly that, frame
  by frame, and is bitwise equal to MMAction2; ``"tensor"`` runs
  ``torch.nn.functional.interpolate(bilinear, align_corners=False, antialias=False)`` on the
  whole clip (CPU or GPU), which samples the same points but rounds differently: within one
  or two grey levels (mean |diff| measured in tests/test_transforms.py and
  tests/test_real_media.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from i3dbench.data.sampling import randint

Box = tuple[int, int, int, int]  # x1, y1, x2, y2


# --------------------------------------------------------------------------- sizes and boxes


def rescale_size(h: int, w: int, short: int) -> tuple[int, int]:
    """Output ``(h, w)`` of MMAction2 ``Resize(scale=(-1, short))``: the short side becomes
    ``short``, the other side ``int(side * short / short_side + 0.5)`` (mmcv.rescale_size)."""
    factor = min(np.inf / max(h, w), short / min(h, w))
    return int(h * float(factor) + 0.5), int(w * float(factor) + 0.5)


def center_crop_box(h: int, w: int, size: int | tuple[int, int]) -> Box:
    """MMAction2 ``CenterCrop(size)`` box (``size`` int or ``(w, h)``); floors the margins."""
    cw, ch = (size, size) if isinstance(size, int) else size
    left, top = (w - cw) // 2, (h - ch) // 2
    return left, top, left + cw, top + ch


def three_crop_boxes(h: int, w: int, size: int | tuple[int, int]) -> list[Box]:
    """MMAction2 ``ThreeCrop(size)`` boxes, in its order: left, right, middle along the long
    side (top, bottom, middle for a portrait frame). One side must already equal the crop."""
    cw, ch = (size, size) if isinstance(size, int) else size
    if ch == h:
        step = (w - cw) // 2
        offsets = [(0, 0), (2 * step, 0), (step, 0)]
    elif cw == w:
        step = (h - ch) // 2
        offsets = [(0, 0), (0, 2 * step), (0, step)]
    else:
        raise ValueError(f"ThreeCrop {cw}x{ch} needs a frame with height {ch} or width {cw}, got {w}x{h}: "
                         "resize the short side to the crop size first")
    return [(x, y, x + cw, y + ch) for x, y in offsets]


def multi_scale_crop_box(h: int, w: int, input_size: int | tuple[int, int], scales: Sequence[float] = (1.0,),
                         max_wh_scale_gap: int = 1, random_crop: bool = False, num_fixed_crops: int = 5,
                         rng=None) -> Box:
    """MMAction2 ``MultiScaleCrop`` box on an ``h x w`` frame.

    A crop width and height are chosen among ``int(min(h, w) * s)`` for ``s`` in ``scales``
    (their scale levels at most ``max_wh_scale_gap`` apart; a side within 2 pixels of the
    input size snaps to it), then a position: one of 5 (or 13) fixed places, or uniform when
    ``random_crop``. ``rng``: numpy Generator / RandomState or ``random.Random`` (MMAction2
    draws from Python's global ``random``; a ``random.Random`` in that state draws the same).
    """
    if rng is None:
        rng = np.random.default_rng()
    in_w, in_h = (input_size, input_size) if isinstance(input_size, int) else input_size
    base = min(h, w)
    sizes = [int(base * s) for s in scales]
    candidates = [[cw, ch] for i, ch in enumerate(sizes) for j, cw in enumerate(sizes) if abs(i - j) <= max_wh_scale_gap]
    crop = list(candidates[int(randint(rng, len(candidates)))])
    for i, target in enumerate((in_w, in_h)):
        if abs(crop[i] - target) < 3:
            crop[i] = target
    cw, ch = crop
    if random_crop:
        x = int(randint(rng, w - cw + 1))
        y = int(randint(rng, h - ch + 1))
    else:
        ws, hs = (w - cw) // 4, (h - ch) // 4
        places = [(0, 0), (4 * ws, 0), (0, 4 * hs), (4 * ws, 4 * hs), (2 * ws, 2 * hs)]
        if num_fixed_crops == 13:
            places += [(0, 2 * hs), (4 * ws, 2 * hs), (2 * ws, 4 * hs), (2 * ws, 0),
                       (ws, hs), (3 * ws, hs), (ws, 3 * hs), (3 * ws, 3 * hs)]
        elif num_fixed_crops != 5:
            raise ValueError(f"num_fixed_crops must be 5 or 13, got {num_fixed_crops}")
        x, y = places[int(randint(rng, len(places)))]
    return x, y, x + cw, y + ch


def draw_flip(rng, flip_ratio: float) -> bool:
    """MMAction2 ``Flip``'s draw: ``rng.random() < flip_ratio`` (one draw, even at ratio 0)."""
    return bool(rng.random() < flip_ratio)


def lazy_box(lazy: np.ndarray, img_h: int, img_w: int, box: Box) -> np.ndarray:
    """Compose ``box`` (pixels of the current ``img_h x img_w`` image) into the float32 box
    ``lazy`` (the current image's extent in original-frame coordinates), as MMAction2's lazy
    crops do, with the same float32 arithmetic so that rounding in :func:`fuse` agrees."""
    left, top, right, bottom = np.asarray(lazy, dtype=np.float32)
    x1, y1, x2, y2 = box
    sx, sy = right - left, bottom - top
    return np.array([left + x1 * sx / img_w, top + y1 * sy / img_h,
                     left + x2 * sx / img_w, top + y2 * sy / img_h], dtype=np.float32)


# --------------------------------------------------------------------------- pixel operations


RESIZE_BACKENDS = ("tensor", "cv2")


def check_resize_backend(backend: str) -> None:
    """Raise unless ``backend`` can run here: ValueError for an unknown name, BackendUnavailable
    (a UserError saying what to install) when ``"cv2"`` is asked for without OpenCV."""
    if backend not in RESIZE_BACKENDS:
        raise ValueError(f"resize backend must be one of {', '.join(RESIZE_BACKENDS)}, got {backend!r}")
    if backend == "cv2":
        try:
            import cv2  # noqa: F401
        except ImportError as e:
            from i3dbench.data.decoders import BackendUnavailable

            raise BackendUnavailable(f"resize backend 'cv2' needs OpenCV ({e}): pip install opencv-python-headless "
                                     "(or the i3dbench[cv2] extra)") from None


def resize(clip: torch.Tensor, size: tuple[int, int], backend: str = "tensor") -> torch.Tensor:
    """Bilinear resize of a ``... x H x W x 3`` clip to ``size = (h, w)``.

    ``backend="tensor"``: one ``interpolate`` call on the whole clip. Half-pixel centres, no
    antialiasing. uint8 clips stay uint8: on the CPU through torch's uint8 kernel (10x faster
    than going through floats), elsewhere through floats, rounded. Float clips are
    interpolated as they are. ``backend="cv2"``: OpenCV's INTER_LINEAR frame by frame, what
    mmcv's ``imresize`` does (bitwise MMAction2), on the CPU; the result goes back to the
    clip's device. A clip already of that size is returned as is (both backends: cv2 copies
    it unchanged).
    """
    *lead, h, w, c = clip.shape
    if (h, w) == tuple(size):
        return clip
    if backend == "cv2":
        return _resize_cv2(clip, size)
    if backend != "tensor":
        check_resize_backend(backend)
    x = clip.reshape(-1, h, w, c).permute(0, 3, 1, 2)  # N x C x H x W, channels-last memory
    if clip.dtype == torch.uint8 and clip.device.type == "cpu":
        y = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=False)
    else:
        y = F.interpolate(x if x.is_floating_point() else x.float(), size=tuple(size), mode="bilinear",
                          align_corners=False, antialias=False)
        if clip.dtype == torch.uint8:
            y = y.round_().clamp_(0, 255).to(torch.uint8)
    return y.permute(0, 2, 3, 1).reshape(*lead, size[0], size[1], c)


def _resize_cv2(clip: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    try:
        import cv2
    except ImportError:
        check_resize_backend("cv2")
        raise
    *lead, h, w, c = clip.shape
    # a crop is a strided view: OpenCV reads rows with a step, so each frame is read in place
    frames = clip.detach().reshape(-1, h, w, c).cpu().numpy()
    out = np.empty((frames.shape[0], size[0], size[1], c), dtype=frames.dtype)
    for i in range(frames.shape[0]):  # one call per frame (OpenCV resizes one image at a time)
        cv2.resize(frames[i], (size[1], size[0]), dst=out[i], interpolation=cv2.INTER_LINEAR)
    return torch.from_numpy(out).reshape(*lead, size[0], size[1], c).to(clip.device)


def resize_short(clip: torch.Tensor, short: int, backend: str = "tensor") -> torch.Tensor:
    """MMAction2 ``Resize(scale=(-1, short))`` on a ``... x H x W x 3`` clip."""
    h, w = clip.shape[-3:-1]
    return resize(clip, rescale_size(h, w, short), backend)


def crop(clip: torch.Tensor, box: Box) -> torch.Tensor:
    """``clip[..., y1:y2, x1:x2, :]`` (a view)."""
    x1, y1, x2, y2 = (int(v) for v in box)
    return clip[..., y1:y2, x1:x2, :]


def flip(clip: torch.Tensor) -> torch.Tensor:
    """Horizontal flip of a ``... x H x W x 3`` clip (a copy)."""
    return clip.flip(-2)


def fuse(clip: torch.Tensor, box: np.ndarray, out_size: tuple[int, int], flipped: bool = False,
         backend: str = "tensor") -> torch.Tensor:
    """MMAction2 ``Fuse``: crop the original frames at ``box`` rounded (half to even, as
    ``np.round``), resize once to ``out_size = (h, w)``, then flip if asked."""
    x1, y1, x2, y2 = (int(v) for v in np.round(np.asarray(box, dtype=np.float32)))
    out = resize(clip[..., y1:y2, x1:x2, :], out_size, backend)
    return flip(out) if flipped else out


def format_shape(views: torch.Tensor) -> torch.Tensor:
    """``V x T x H x W x 3`` -> contiguous ``V x 3 x T x H x W`` (MMAction2 FormatShape NCTHW)."""
    return views.permute(0, 4, 1, 2, 3).contiguous()


def crop_views(clips: torch.Tensor, boxes: Sequence[Box]) -> torch.Tensor:
    """Cut every box out of every clip: ``N x T x H x W x 3`` -> ``(len(boxes) * N) x 3 x T x h x w``
    uint8, crop-major like MMAction2's ThreeCrop + FormatShape (view ``k * N + n`` is crop ``k``
    of clip ``n``)."""
    n, t = clips.shape[:2]
    index = torch.arange(n * t, device=clips.device).reshape(n, t)
    return views_from_frames(clips.reshape(n * t, *clips.shape[2:]), index, boxes)


def views_from_frames(frames: torch.Tensor, index: torch.Tensor | np.ndarray, boxes: Sequence[Box],
                      mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                      out: torch.Tensor | None = None) -> torch.Tensor:
    """Views of clips cut from decoded frames: ``frames`` ``U x H x W x 3``, ``index`` ``N x T``
    (clip ``n``'s ``t``-th frame is ``frames[index[n, t]]``) -> ``(K * N) x 3 x T x h x w`` for the
    K ``boxes``, crop-major (MMAction2's order). uint8, or float32 normalised with ``mean`` /
    ``std`` (bitwise what :func:`normalize` gives) written straight into the output.

    The channel transpose runs once on the U frames, not on every view. When every clip is an
    evenly spaced run of ``frames`` (decode a contiguous range of frames to get that), each view
    is copied straight from a strided slice; otherwise the clips are gathered first.

    ``out``: a tensor to write the views into when it has their shape, dtype and device (else a
    new one is made). Reusing one across videos saves first-touching fresh memory for each
    (30 float views of 32 x 256 x 256 are 755 MB: page faults cost about as much as the copy).
    """
    index = np.asarray(index.cpu() if torch.is_tensor(index) else index, dtype=np.int64)
    n, t = index.shape
    planar = frames.permute(3, 0, 1, 2).contiguous()  # 3 x U x H x W
    steps = np.diff(index, axis=1) if t > 1 else np.ones((n, 1), dtype=np.int64)
    strided = bool(np.all(steps >= 1) and np.all(steps == steps[:, :1]))
    if strided:
        clips = [planar[:, i0:i0 + (t - 1) * int(st[0]) + 1:int(st[0])] for i0, st in zip(index[:, 0], steps)]
    else:
        gathered = planar[:, torch.from_numpy(index.reshape(-1)).to(frames.device)]  # 3 x (N*T) x H x W
        clips = list(gathered.view(planar.shape[0], n, t, *planar.shape[2:]).unbind(1))
    x1, y1, x2, y2 = boxes[0]
    dtype = frames.dtype if mean is None else torch.float32
    shape = (len(boxes) * n, planar.shape[0], t, y2 - y1, x2 - x1)
    if out is None or tuple(out.shape) != shape or out.dtype != dtype or out.device != frames.device:
        out = torch.empty(shape, dtype=dtype, device=frames.device)
    views = out
    out = out.view(len(boxes), n, *shape[1:])
    for k, (x1, y1, x2, y2) in enumerate(boxes):  # <= 3 crops x N clips: one copy per view
        for c, clip in enumerate(clips):
            out[k, c].copy_(clip[..., y1:y2, x1:x2])
    if mean is not None:
        _normalize_(views, mean, std)
    return views


def _normalize_(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    shape = (len(mean), 1, 1, 1)
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(shape)
    s = torch.tensor(std, dtype=torch.float32, device=x.device).view(shape)
    # whole-tensor in-place ops: per-block loops were no faster on one thread and several
    # times slower with intra-op threads on a loaded machine (one barrier per block)
    return x.sub_(m).div_(s)


def normalize(views_uint8: torch.Tensor, mean: Sequence[float], std: Sequence[float],
              device: torch.device | str | None = None) -> torch.Tensor:
    """``(x - mean) / std`` per channel in float32 on ``device`` (default: where the views are).

    ``views_uint8``: ``... x 3 x T x H x W``. Bitwise equal to MMAction2's
    ActionDataPreprocessor, about 3x faster on the CPU (it converts to float once, then works
    in place; ``uint8 - float`` broadcasting converts element by element). Moving
    uint8 to the device first transfers 4x fewer bytes.
    """
    x = views_uint8 if device is None else views_uint8.to(device, non_blocking=True)
    if x.ndim < 4 or x.shape[-4] != len(mean) or len(mean) != len(std):
        raise ValueError(f"normalize: views of shape {tuple(x.shape)} need {len(mean)} channels at dim -4 "
                         f"(... x 3 x T x H x W); mean/std have {len(mean)}/{len(std)}")
    return _normalize_(x.to(torch.float32, copy=True), mean, std)


# --------------------------------------------------------------------------- pipelines


@dataclass(frozen=True)
class Geometry:
    """Where one training / validation clip comes from in its original frames.

    ``resized``: size after ``Resize((-1, short))``; ``box``: the crop in resized pixels;
    ``out``: final ``(h, w)``; ``flip``: horizontal flip last; ``lazy_box``: the same crop in
    original-frame coordinates (float32, MMAction2's lazy ``crop_bbox``), set when lazy.
    """

    resized: tuple[int, int]
    box: Box
    out: tuple[int, int]
    flip: bool
    lazy_box: tuple[float, float, float, float] | None = None


def _maybe_lazy(h: int, w: int, resized: tuple[int, int], box: Box, lazy: bool):
    if not lazy:
        return None
    # Resize only rescales the lazy image's extent; the crop is then composed into it
    full = np.array([0, 0, w, h], dtype=np.float32)
    return tuple(float(v) for v in lazy_box(full, resized[0], resized[1], box))


def plan_train_geometry(h: int, w: int, short: int, input_size: int, scales: Sequence[float],
                        flip_ratio: float, lazy: bool = False, rng=None, flip_rng=None,
                        max_wh_scale_gap: int = 0) -> Geometry:
    """The I3D training geometry: Resize((-1, short)) -> MultiScaleCrop(input_size, scales,
    random_crop=False, max_wh_scale_gap=0) -> Resize((input_size,)*2) -> Flip(flip_ratio).
    Draws the crop from ``rng`` then the flip from ``flip_rng`` (default: ``rng``)."""
    rng = np.random.default_rng() if rng is None else rng
    resized = rescale_size(h, w, short)
    box = multi_scale_crop_box(*resized, input_size, tuple(scales), max_wh_scale_gap, rng=rng)
    flipped = draw_flip(rng if flip_rng is None else flip_rng, flip_ratio)
    return Geometry(resized, box, (input_size, input_size), flipped, _maybe_lazy(h, w, resized, box, lazy))


def plan_val_geometry(h: int, w: int, short: int, crop_size: int, lazy: bool = False) -> Geometry:
    """Validation geometry: Resize((-1, short)) -> CenterCrop(crop_size); never flipped."""
    resized = rescale_size(h, w, short)
    box = center_crop_box(*resized, crop_size)
    return Geometry(resized, box, (crop_size, crop_size), False, _maybe_lazy(h, w, resized, box, lazy))


def apply_geometry(clips: torch.Tensor, g: Geometry, backend: str = "tensor") -> torch.Tensor:
    """Apply a planned geometry to ``... x H x W x 3`` frames, resizing with ``backend``.

    Lazy (``g.lazy_box`` set): one crop of the original frames and one resize, like MMAction2's
    Fuse. Otherwise step by step like its non-lazy pipeline: resize, crop, resize, flip.
    """
    if g.lazy_box is not None:
        return fuse(clips, np.array(g.lazy_box, dtype=np.float32), g.out, g.flip, backend)
    out = resize(crop(resize(clips, g.resized, backend), g.box), g.out, backend)
    return flip(out) if g.flip else out


def eval_views(clips: torch.Tensor, short: int, crop_size: int, three_crop: bool = True,
               backend: str = "tensor") -> torch.Tensor:
    """The test pipeline on ``N x T x H x W x 3`` clips: Resize((-1, short)) -> ThreeCrop or
    CenterCrop(crop_size) -> FormatShape: ``(crops * N) x 3 x T x crop x crop`` uint8,
    crop-major as MMAction2 orders them."""
    frames = resize_short(clips, short, backend)
    h, w = frames.shape[-3:-1]
    boxes = three_crop_boxes(h, w, crop_size) if three_crop else [center_crop_box(h, w, crop_size)]
    return crop_views(frames, boxes)

"""Frame decoders: decord (default), PyAV and JPEG rawframes behind one small interface.

Every decoder takes a path (a video file, or a frame directory for rawframes) and 0-based
frame indices, and returns the frames as one ``uint8`` RGB tensor ``T x H x W x 3`` in the
order asked for. Each distinct frame is decoded once even when indices repeat (test-mode
sampling loops short videos), and the result is gathered afterwards.

A file that cannot be opened or decoded raises :class:`DecodeError` naming the path and the
reason, so a long run can report it and go on (see ``dataset.py``'s ``on_error``).
JPEG frames are decoded with a chosen backend (``cv2``, ``turbojpeg``, ``pillow``: an entry's
``data.jpeg_backend``); a backend whose library is missing raises :class:`BackendUnavailable`,
a UserError that says what to install. The decoder libraries are imported lazily, when a
decoder is first built.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from i3dbench.errors import UserError

__all__ = [
    "DECODERS",
    "JPEG_BACKENDS",
    "BackendUnavailable",
    "DecodeError",
    "Decoder",
    "DecordDecoder",
    "PyAVDecoder",
    "RawFrameDecoder",
    "get_decoder",
]


class DecodeError(RuntimeError):
    """A video or frame directory could not be opened or decoded: ``.path`` and ``.reason``."""

    def __init__(self, path: str | os.PathLike, reason: str):
        # args carries both fields so the exception survives pickling (DataLoader workers).
        super().__init__(str(path), str(reason))
        self.path = str(path)
        self.reason = str(reason)

    def __str__(self) -> str:
        return f"cannot decode {self.path}: {self.reason}"


class Decoder(Protocol):
    """What every decoder offers (decoders are small, stateless and picklable)."""

    name: str

    @property
    def version(self) -> str: ...

    def num_frames(self, path: str | os.PathLike) -> int: ...

    def read(self, path: str | os.PathLike, indices: np.ndarray) -> torch.Tensor: ...


def _unique_indices(path, indices) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct indices and, for each requested index, its position among them."""
    idx = np.asarray(indices)
    if idx.ndim != 1:
        idx = idx.reshape(-1)
    if idx.size == 0:
        raise DecodeError(path, "no frame indices were requested")
    if not np.issubdtype(idx.dtype, np.integer):
        raise DecodeError(path, f"frame indices must be integers, got dtype {idx.dtype}")
    if idx.min() < 0:
        raise DecodeError(path, f"negative frame index {int(idx.min())}")
    return np.unique(idx, return_inverse=True)


def _existing_video_file(path) -> str:
    """``path`` as a string, or a DecodeError saying it is missing or empty (before a library opens it)."""
    p = str(path)
    if not os.path.isfile(p):
        raise DecodeError(p, "file not found")
    if os.path.getsize(p) == 0:
        raise DecodeError(p, "file is empty (0 bytes)")
    return p


def _check_range(path, unique: np.ndarray, total: int) -> None:
    if total <= 0:
        raise DecodeError(path, "the container reports 0 frames")
    if unique[-1] >= total:
        raise DecodeError(path, f"frame index {int(unique[-1])} is out of range (the video has {total} frames)")


def _gather(frames: np.ndarray, inverse: np.ndarray) -> torch.Tensor:
    """Frames of the distinct indices -> tensor in the requested order (repeats share data once)."""
    if len(inverse) == len(frames) and np.array_equal(inverse, np.arange(len(frames))):
        return torch.from_numpy(np.ascontiguousarray(frames))  # sorted, no repeats: no copy
    # numpy's take is one predictable copy; torch indexing spreads it over intra-op threads.
    return torch.from_numpy(np.take(frames, inverse, axis=0))


# --------------------------------------------------------------------------- decord


@dataclass
class DecordDecoder:
    """decord ``VideoReader``; ``num_threads=1`` as MMAction2's DecordInit (workers give parallelism)."""

    num_threads: int = 1
    name: str = "decord"

    def __post_init__(self) -> None:
        import decord  # noqa: F401  (fail early, at build time, if decord is missing)

    @property
    def version(self) -> str:
        import decord

        return decord.__version__

    def _open(self, path):
        import decord

        p = _existing_video_file(path)
        try:
            return decord.VideoReader(p, num_threads=self.num_threads)
        except Exception as e:  # noqa: BLE001 - decord raises DECORDError/RuntimeError with a C++ log line
            raise DecodeError(p, f"decord cannot open it ({_short(e)})") from None

    def num_frames(self, path) -> int:
        return len(self._open(path))

    def read(self, path, indices) -> torch.Tensor:
        unique, inverse = _unique_indices(path, indices)
        vr = self._open(path)
        _check_range(path, unique, len(vr))
        try:
            frames = vr.get_batch(unique.tolist()).asnumpy()
        except Exception as e:  # noqa: BLE001 - any library failure becomes a DecodeError
            raise DecodeError(path, f"decord failed while decoding frames ({_short(e)})") from None
        return _gather(frames, inverse)


# --------------------------------------------------------------------------- PyAV


@dataclass
class PyAVDecoder:
    """PyAV (FFmpeg): decodes in presentation order from the start up to the last index needed.

    Frame ``i`` is the ``i``-th decoded frame, which is what decord and MMAction2's
    PyAVDecode index too.
    """

    thread_type: str = "AUTO"
    name: str = "pyav"

    def __post_init__(self) -> None:
        import av  # noqa: F401

    @property
    def version(self) -> str:
        import av

        return av.__version__

    def _open(self, path):
        import av

        p = _existing_video_file(path)
        try:
            container = av.open(p)
        except Exception as e:  # noqa: BLE001 - any library failure becomes a DecodeError
            raise DecodeError(p, f"PyAV cannot open it ({_short(e)})") from None
        if not container.streams.video:
            container.close()
            raise DecodeError(p, "no video stream in the file")
        return container

    def num_frames(self, path) -> int:
        container = self._open(path)
        try:
            stream = container.streams.video[0]
            if stream.frames > 0:
                return int(stream.frames)
            # Some containers (e.g. webm, mkv) carry no frame count: count the packets instead.
            return sum(1 for pkt in container.demux(stream) if pkt.size > 0)
        except DecodeError:
            raise
        except Exception as e:  # noqa: BLE001 - any library failure becomes a DecodeError
            raise DecodeError(path, f"PyAV failed while counting frames ({_short(e)})") from None
        finally:
            container.close()

    def iter_frames(self, path):
        """Every frame in presentation order as an ``H x W x 3`` uint8 RGB array, one at a time
        (constant memory, for extraction). A file whose data ends before the frame count its
        container claims raises DecodeError after the frames that could be decoded."""
        container = self._open(path)
        try:
            stream = container.streams.video[0]
            stream.thread_type = self.thread_type
            n = 0
            try:
                for frame in container.decode(stream):
                    yield frame.to_ndarray(format="rgb24")
                    n += 1
            except Exception as e:  # noqa: BLE001 - any library failure becomes a DecodeError
                raise DecodeError(path, f"PyAV failed while decoding frame {n} ({_short(e)})") from None
            claimed = int(stream.frames)
            if n == 0:
                raise DecodeError(path, "no frame could be decoded")
            if claimed > n:
                raise DecodeError(path, f"only {n} of the {claimed} frames could be decoded (truncated or corrupt file)")
        finally:
            container.close()

    def read(self, path, indices) -> torch.Tensor:
        unique, inverse = _unique_indices(path, indices)
        container = self._open(path)
        try:
            stream = container.streams.video[0]
            stream.thread_type = self.thread_type
            last = int(unique[-1])
            out = None
            k = 0  # position in `unique` of the next wanted frame
            i = -1
            for i, frame in enumerate(container.decode(stream)):
                if i == unique[k]:
                    arr = frame.to_ndarray(format="rgb24")
                    if out is None:
                        out = np.empty((len(unique),) + arr.shape, dtype=np.uint8)
                    out[k] = arr
                    k += 1
                    if i == last:
                        break
            if k < len(unique):
                claimed = int(stream.frames)
                if claimed > i + 1:  # the container promised more: the data ends early
                    raise DecodeError(path, f"only {i + 1} of the {claimed} frames could be decoded (truncated or corrupt file)")
                raise DecodeError(path, f"frame index {int(unique[k])} is out of range (the video has {i + 1} frames)")
        except DecodeError:
            raise
        except Exception as e:  # noqa: BLE001 - any library failure becomes a DecodeError
            raise DecodeError(path, f"PyAV failed while decoding frames ({_short(e)})") from None
        finally:
            container.close()
        return _gather(out, inverse)


# --------------------------------------------------------------------------- rawframes


JPEG_BACKENDS = ("cv2", "turbojpeg", "pillow")

# What to install for each JPEG backend (the messages of BackendUnavailable).
JPEG_INSTALL = {
    "cv2": "pip install opencv-python-headless (or the i3dbench[cv2] extra)",
    "turbojpeg": ("pip install simplejpeg (it bundles libjpeg-turbo; or the i3dbench[turbojpeg] extra); or "
                  "PyTurboJPEG, MMAction2's wrapper, with the system library: apt-get install libturbojpeg0 and "
                  "pip install 'PyTurboJPEG<2' (PyTurboJPEG>=2 needs libjpeg-turbo>=3)"),
    "pillow": "pip install pillow",
}


class BackendUnavailable(UserError, ImportError):
    """A decoding or resize backend asked for (by an entry, a flag or an option) is not installed;
    the message says what to install."""


_TURBO: dict[str, tuple] = {}  # per process: {"codec": (decode, version)} once one loaded


def _turbojpeg_codec() -> tuple:
    """``(decode(bytes) -> RGB array, version)`` through libjpeg-turbo's TurboJPEG API.

    PyTurboJPEG first (what MMAction2's ``decoding_backend='turbojpeg'`` calls; it needs the
    system libturbojpeg), else simplejpeg (its wheel bundles libjpeg-turbo). Both decompress
    with the TurboJPEG defaults (accurate integer DCT, fancy upsampling), as PyTurboJPEG's
    ``decode(..., flags=0)`` does, so they give the same pixels (tests/test_decoders.py).
    """
    if "codec" in _TURBO:
        return _TURBO["codec"]
    reasons = []
    try:
        import turbojpeg

        jpeg = turbojpeg.TurboJPEG()  # raises when libturbojpeg is missing or too old
        rgb = turbojpeg.TJPF_RGB

        def decode(data: bytes) -> np.ndarray:
            return jpeg.decode(data, pixel_format=rgb)

        version = getattr(turbojpeg, "__version__", None) or _dist_version("PyTurboJPEG")
        _TURBO["codec"] = (decode, f"PyTurboJPEG-{version}")
        return _TURBO["codec"]
    except ImportError:
        reasons.append("PyTurboJPEG is not installed")
    except Exception as e:  # noqa: BLE001 - OSError / RuntimeError from loading libturbojpeg
        reasons.append(f"PyTurboJPEG cannot load libturbojpeg ({_short(e)})")
    try:
        import simplejpeg

        def decode(data: bytes) -> np.ndarray:
            return simplejpeg.decode_jpeg(data, colorspace="RGB", fastdct=False, fastupsample=False)

        _TURBO["codec"] = (decode, f"simplejpeg-{simplejpeg.__version__}")
        return _TURBO["codec"]
    except ImportError:
        reasons.append("simplejpeg is not installed")
    raise BackendUnavailable(f"JPEG backend 'turbojpeg' is not available ({'; '.join(reasons)}): {JPEG_INSTALL['turbojpeg']}")


def _dist_version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


@dataclass
class RawFrameDecoder:
    """A directory of JPEG frames named ``filename_tmpl.format(i + start_index)`` (MMAction2's RawFrameDecode).

    Indices are 0-based at the API, as for videos; ``start_index`` (1 for the usual
    ``img_00001.jpg``) is added on disk. ``backend`` is the JPEG decoder, a protocol setting
    (the entry's ``data.jpeg_backend``): "cv2" (OpenCV, MMAction2's default), "turbojpeg"
    (libjpeg-turbo's TurboJPEG API through PyTurboJPEG or simplejpeg, the 0.x lazy rows'
    ``decoding_backend``), "pillow", or "auto" (cv2 when importable, else Pillow: for tools
    that only need some decoder). All of them wrap libjpeg-turbo with its accurate defaults;
    the measured differences between them are in tests/test_decoders.py. ``version`` names the
    backend and its library version. Frames are decoded on ``num_threads`` threads (every
    backend releases the GIL while decoding).
    """

    filename_tmpl: str = "img_{:05}.jpg"
    start_index: int = 1
    num_threads: int = 1  # as decord's: DataLoader workers give the parallelism
    backend: str = "auto"
    name: str = "rawframes"

    def __post_init__(self) -> None:
        if self.backend == "auto":
            try:
                import cv2  # noqa: F401

                self.backend = "cv2"
            except ImportError:
                self.backend = "pillow"
        if self.backend not in JPEG_BACKENDS:
            raise ValueError(f"backend must be 'auto' or one of {', '.join(JPEG_BACKENDS)}, got {self.backend!r}")
        self._library_version()  # fail early, at build time, if the backend's library is missing
        self._pattern = _template_regex(self.filename_tmpl)

    def _library_version(self) -> str:
        try:
            if self.backend == "cv2":
                import cv2

                return f"opencv-{cv2.__version__}"
            if self.backend == "pillow":
                import PIL

                return f"pillow-{PIL.__version__}"
        except ImportError as e:
            raise BackendUnavailable(f"JPEG backend {self.backend!r} is not installed ({e}): {JPEG_INSTALL[self.backend]}") from None
        return _turbojpeg_codec()[1]

    @property
    def version(self) -> str:
        """The JPEG backend and its library, e.g. ``cv2 opencv-5.0.0`` or ``turbojpeg simplejpeg-1.9.0``."""
        return f"{self.backend} {self._library_version()}"

    def num_frames(self, path) -> int:
        """Number of frames ``start_index, start_index+1, ...`` present without a gap."""
        p = str(path)
        if not os.path.isdir(p):
            raise DecodeError(p, "frame directory not found")
        numbers = sorted(int(m.group(1)) for name in os.listdir(p) if (m := self._pattern.fullmatch(name)))
        if not numbers:
            raise DecodeError(p, f"no frames named like {self.filename_tmpl!r} in the directory")
        nums = np.asarray(numbers)
        nums = nums[nums >= self.start_index]  # e.g. a frame 0 next to 1-based frames is not addressable
        expected = np.arange(self.start_index, self.start_index + len(nums))
        gap = np.flatnonzero(nums != expected)
        # Frames after a gap cannot be addressed by index: count the run that starts at start_index.
        return int(gap[0]) if gap.size else len(nums)

    def _load(self, f: str) -> np.ndarray:
        if self.backend == "cv2":
            import cv2

            if not os.path.isfile(f):  # checked first: imread would only log a warning and return None
                raise DecodeError(f, "frame file not found")
            img = cv2.imread(f, cv2.IMREAD_COLOR)
            if img is None:
                raise DecodeError(f, "cannot read the JPEG (OpenCV could not decode it)")
            return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        if self.backend == "turbojpeg":
            decode = _turbojpeg_codec()[0]
            try:
                with open(f, "rb") as fh:
                    data = fh.read()
            except FileNotFoundError:
                raise DecodeError(f, "frame file not found") from None
            try:
                img = decode(data)
            except Exception as e:  # noqa: BLE001 - any library failure becomes a DecodeError
                raise DecodeError(f, f"cannot read the JPEG ({_short(e)})") from None
            if img is None or img.ndim != 3:
                raise DecodeError(f, "cannot read the JPEG (libjpeg-turbo returned no colour image)")
            return img
        from PIL import Image

        try:
            with Image.open(f) as im:
                return np.asarray(im if im.mode == "RGB" else im.convert("RGB"))
        except FileNotFoundError:
            raise DecodeError(f, "frame file not found") from None
        except Exception as e:  # noqa: BLE001 - any library failure becomes a DecodeError
            raise DecodeError(f, f"cannot read the JPEG ({_short(e)})") from None

    def read(self, path, indices) -> torch.Tensor:
        unique, inverse = _unique_indices(path, indices)
        p = str(path)
        if not os.path.isdir(p):
            raise DecodeError(p, "frame directory not found")
        files = [os.path.join(p, self.filename_tmpl.format(int(i) + self.start_index)) for i in unique]
        first = self._load(files[0])
        out = np.empty((len(files),) + first.shape, dtype=np.uint8)
        out[0] = first

        def load_into(k: int) -> None:
            img = self._load(files[k])
            if img.shape != first.shape:
                raise DecodeError(files[k], f"frame size {img.shape[1]}x{img.shape[0]} differs from the first frame's {first.shape[1]}x{first.shape[0]}")
            out[k] = img

        if len(files) > 1:
            if self.num_threads <= 1:
                for k in range(1, len(files)):
                    load_into(k)
            else:
                with ThreadPoolExecutor(min(self.num_threads, len(files) - 1)) as pool:
                    list(pool.map(load_into, range(1, len(files))))
        return _gather(out, inverse)


# --------------------------------------------------------------------------- registry


DECODERS = {"decord": DecordDecoder, "pyav": PyAVDecoder, "rawframes": RawFrameDecoder}


def get_decoder(name: str = "decord", **options) -> Decoder:
    """Build the decoder called ``name`` ("decord", "pyav", "rawframes") with its options.

    Options: decord ``num_threads``; pyav ``thread_type``; rawframes ``filename_tmpl``,
    ``start_index``, ``num_threads``, ``backend`` ("cv2", "turbojpeg", "pillow", "auto").
    Raises ValueError for an unknown name and :class:`BackendUnavailable` (a UserError that
    says what to install) when the library is missing.
    """
    key = name.lower()
    if key not in DECODERS:
        raise ValueError(f"unknown decoder {name!r}; choose one of {sorted(DECODERS)}")
    try:
        return DECODERS[key](**options)
    except BackendUnavailable:
        raise
    except ImportError as e:
        pkg = {"decord": "decord", "pyav": "av", "rawframes": "opencv-python-headless or pillow"}[key]
        raise BackendUnavailable(f"decoder {key!r} needs the {pkg!r} package: pip install {pkg} ({e})") from e


def _template_regex(tmpl: str) -> re.Pattern:
    """``img_{:05}.jpg`` -> regex with one group for the number (any one ``{...}`` field)."""
    m = re.search(r"\{[^}]*\}", tmpl)
    if m is None:
        raise ValueError(f"filename_tmpl {tmpl!r} has no '{{}}' field for the frame number")
    return re.compile(re.escape(tmpl[: m.start()]) + r"(\d+)" + re.escape(tmpl[m.end() :]))


def _short(e: BaseException, limit: int = 200) -> str:
    """One line of a library's error message (decord appends a C++ stack trace)."""
    text = str(e).strip().splitlines()
    line = text[0] if text else type(e).__name__
    # decord prefixes "[hh:mm:ss] /path/of/its/source.cc:NNN: " - noise for a user.
    line = re.sub(r"^\[\d\d:\d\d:\d\d\] \S+:\d+: ", "", line)
    return line[:limit]


def is_video_path(path: str | os.PathLike) -> bool:
    """True for a path that looks like a video file (used to pick a decoder by data format)."""
    return Path(path).suffix.lower() in {".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".flv"}

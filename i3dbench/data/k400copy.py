"""The user's Kinetics-400 copy, described once: which folder and list hold each layout the zoo uses.

The zoo's rows read one of three layouts (``data.format`` x ``data.resolution``; the lazy rows
read the rawframes with their own JPEG backend): videos resized to a short side of 256,
rawframes of 340x256, rawframes with a short side of 256. One YAML file (its path in
``I3DBENCH_K400`` or ``--data``) names, per layout the user has, the root and the val list, and
optionally the reference id list the copy is compared with::

    # my-k400.yaml (relative paths are relative to this file's folder)
    videos_short256:    {root: /data/k400/videos_val, list: /data/k400/val_list_videos.txt}
    rawframes_340x256:  {root: /data/k400/rawframes_val_340x256, list: /data/k400/val_list_rawframes.txt}
    rawframes_short256: {root: /data/k400/rawframes_val_256p, list: /data/k400/val_list_rawframes_256p.txt}
    reference_ids: /data/k400/mmaction_val_ids.txt   # optional: eval's default --intersect-with

``I3DBENCH_K400_ROOT`` + ``I3DBENCH_K400_ANN`` stay a shortcut for one copy of one layout: its
format is read from the list (2 columns: videos, 3: rawframes); its resolution is not known,
so it serves every row of that format and the evaluation's layout probe (``data.layout``)
refuses the rows whose frames it does not hold.

:func:`find_copy` gives the description in effect (``--data``, else ``I3DBENCH_K400``, else the
two variables, else None); :meth:`K400Copy.for_entry` the (root, list) of an entry's layout;
:func:`inputs_for` both in one call, for code that skips an entry it has no data for (compare).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..errors import UserError

__all__ = ["LAYOUTS", "K400Copy", "find_copy", "inputs_for", "load_copy"]

ENV_FILE, ENV_ROOT, ENV_ANN = "I3DBENCH_K400", "I3DBENCH_K400_ROOT", "I3DBENCH_K400_ANN"
# key in the YAML -> (data.format, data.resolution) of the rows that read it
LAYOUTS = {
    "videos_short256": ("videos", "short256"),
    "videos_340x256": ("videos", "340x256"),
    "rawframes_340x256": ("rawframes", "340x256"),
    "rawframes_short256": ("rawframes", "short256"),
}


@dataclass(frozen=True)
class K400Copy:
    """Where each layout of the user's copy is; ``layouts`` maps (format, resolution) to (root,
    list); a resolution of None (the two-variable shortcut) serves every row of its format."""

    source: str  # the YAML file, or "I3DBENCH_K400_ROOT/_ANN"
    layouts: dict = field(default_factory=dict)
    reference: Optional[Path] = None

    def for_entry(self, entry) -> Optional[tuple[Path, Path]]:
        d = entry.data
        return self.layouts.get((d.format, d.resolution)) or self.layouts.get((d.format, None))

    def why_not(self, entry) -> str:
        """Why :meth:`for_entry` has nothing for ``entry`` (for a skip line or an error)."""
        d = entry.data
        have = ", ".join(f"{fmt} {res or '(any size)'}" for fmt, res in self.layouts) or "nothing"
        key = next(k for k, v in LAYOUTS.items() if v == (d.format, d.resolution))
        return (f"{self.source} has no {d.format} {d.resolution} layout for {entry.name} (it has: {have}); "
                f"add `{key}: {{root: ..., list: ...}}` (README: Your Kinetics-400 copy)")

    def formats(self) -> set:
        return {fmt for fmt, _ in self.layouts}


def _list_format(ann: Path) -> str:
    with open(ann) as f:
        first = f.readline().split()
    return "rawframes" if len(first) >= 3 else "videos"  # "<dir> <total_frames> <label>" vs "<file> <label>"


def load_copy(path) -> K400Copy:
    """Read and check a copy description; a UserError names the file, the field and what to fix."""
    import yaml

    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"{path}: no such Kinetics-400 copy description (a YAML file; README: Your Kinetics-400 copy)")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise UserError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(doc, dict) or not doc:
        raise UserError(f"{path}: expected a mapping of layouts ({', '.join(LAYOUTS)}) to {{root, list}}")
    base = path.parent

    def resolve(value, where: str) -> Path:
        if not isinstance(value, str) or not value.strip():
            raise UserError(f"{path}: field '{where}' must be a path, got {value!r}")
        p = Path(value).expanduser()
        return (p if p.is_absolute() else base / p).resolve()

    layouts, reference = {}, None
    for key, value in doc.items():
        if key == "reference_ids":
            reference = resolve(value, key)
            if not reference.is_file():
                raise UserError(f"{path}: field 'reference_ids' is {reference}, not a file")
            continue
        if key not in LAYOUTS:
            raise UserError(f"{path}: unknown field '{key}' (the layouts are {', '.join(LAYOUTS)}; and reference_ids)")
        if not isinstance(value, dict) or set(value) != {"root", "list"}:
            raise UserError(f"{path}: field '{key}' must be {{root: FOLDER, list: FILE}}, got {value!r}")
        root, ann = resolve(value["root"], f"{key}.root"), resolve(value["list"], f"{key}.list")
        if not root.is_dir():
            raise UserError(f"{path}: field '{key}.root' is {root}, not a folder")
        if not ann.is_file():
            raise UserError(f"{path}: field '{key}.list' is {ann}, not a file")
        fmt = _list_format(ann)
        if fmt != LAYOUTS[key][0]:
            raise UserError(f"{path}: field '{key}.list' ({ann}) is a {fmt} list, the layout {key} needs a "
                            f"{LAYOUTS[key][0]} list ({'<file> <label>' if fmt == 'rawframes' else '<dir> <frames> <label>'})")
        layouts[LAYOUTS[key]] = (root, ann)
    if not layouts:
        raise UserError(f"{path}: names no layout ({', '.join(LAYOUTS)})")
    return K400Copy(str(path), layouts, reference)


def find_copy(data=None) -> Optional[K400Copy]:
    """The copy in effect: ``data`` (``--data FILE``), else ``$I3DBENCH_K400``, else
    ``$I3DBENCH_K400_ROOT`` + ``$I3DBENCH_K400_ANN`` (one layout), else None."""
    if data is not None:
        return load_copy(data)
    if os.environ.get(ENV_FILE):
        return load_copy(os.environ[ENV_FILE])
    root, ann = os.environ.get(ENV_ROOT), os.environ.get(ENV_ANN)
    if not root or not ann:
        return None
    if not Path(root).is_dir():
        raise UserError(f"{ENV_ROOT}={root}: not a folder")
    if not Path(ann).is_file():
        raise UserError(f"{ENV_ANN}={ann}: not a file")
    return K400Copy(f"{ENV_ROOT}/{ENV_ANN}", {(_list_format(Path(ann)), None): (Path(root), Path(ann))})


def inputs_for(entry, data=None) -> tuple[Optional[tuple[Path, Path]], str]:
    """``((root, list), "")`` of ``entry``'s own layout in the copy in effect (:func:`find_copy`:
    ``data``, else ``$I3DBENCH_K400``, else ``$I3DBENCH_K400_ROOT``/``_ANN``), or ``(None, why)``
    when there is no copy or it lacks that layout. A broken description still raises its UserError:
    the user has to fix it, not see the entry skipped."""
    copy = find_copy(data)
    if copy is None:
        return None, (f"needs a Kinetics-400 copy: --data FILE or {ENV_FILE}=FILE (a description of every layout), "
                      f"or {ENV_ROOT} and {ENV_ANN} (one layout)")
    found = copy.for_entry(entry)
    if found is None:
        return None, copy.why_not(entry)
    return found, ""

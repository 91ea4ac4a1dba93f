"""`i3dbench sweep`: the protocol-sensitivity table of an entry."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UsageError
from .common import copy_inputs, positive_int, resolve_entry


def _cmd_sweep(args: argparse.Namespace) -> int:
    from ..runner import smoke_checkpoint, smoke_data
    from ..runs import check_output, open_run_dir
    from ..sweep import parse_vary, run_sweep

    entry = resolve_entry(args.name, args.zoo)
    vary = parse_vary(args.vary)
    data_root, ann, rawframes = args.data_root, args.ann, None
    if (args.rawframes_root is None) != (args.rawframes_ann is None):
        raise UsageError("--rawframes-root and --rawframes-ann go together (the JPEG copy of the same videos)")
    if args.rawframes_root is not None:
        rawframes = (args.rawframes_root, args.rawframes_ann)
    checkpoint = args.checkpoint
    if entry.dataset == "synthetic":
        if data_root is None or ann is None:
            data_root, ann = smoke_data(entry)
            if "rawframes" in vary.get("decoder", []) and rawframes is None:  # the synthetic set has both
                rawframes = smoke_data(_as_rawframes(entry))
        if checkpoint is None and entry.checkpoint.url is None:
            checkpoint = smoke_checkpoint(entry, train_if_missing=False)
    if data_root is None or ann is None:  # a Kinetics-400 entry: its layout from --data / I3DBENCH_K400 / _ROOT+_ANN
        data_root, ann, _ = copy_inputs("sweep", entry, args.data)
    if args.out is not None:
        check_output(args.out, inputs=[data_root, ann, checkpoint, args.rawframes_root, args.rawframes_ann, args.zoo])
    run = open_run_dir(args.out)
    res = run_sweep(entry, vary, data_root, ann, checkpoint=checkpoint, device=args.device, out=run,
                    num_workers=args.workers, decoder=args.decoder, rawframes=rawframes, progress=not args.quiet)
    print((res.out_dir / "sweep.md").read_text())
    print(f"table: {res.out_dir / 'sweep.md'} (CSV and plot next to it); records: {run.records}")
    incomplete = [v.label for v in res.variants if not v.result.complete]
    if incomplete:
        print(f"sweep {entry.name}: INCOMPLETE evaluations ({', '.join(incomplete)}): videos failed to decode")
        return 2
    return 0


def _as_rawframes(entry):
    import dataclasses

    return dataclasses.replace(entry, data=dataclasses.replace(entry.data, format="rawframes", start_index=1))


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "sweep", help="what each protocol setting costs an entry: a paired table on the same videos",
        description="Evaluate variants of an entry's test protocol on the same videos and compare each with the "
        "entry's own protocol: top-1/top-5 with exact intervals, the paired difference with Newcombe's 95%% "
        "interval, the exact McNemar p-value and the number of videos that flipped. Knobs: sampler=0.x,1.x "
        "averaging=prob,score views=10x3,10x1 decoder=decord,pyav,rawframes resize=cv2,tensor "
        "jpeg=cv2,turbojpeg,pillow precision=fp32,bf16,fp16 ann=LIST_A,LIST_B. Variants that decode the same "
        "frames share the decode. With one views value (e.g. --vary views=1x1 --vary sampler=0.x,1.x) the base is "
        "the entry's protocol at those views, unless averaging is varied too (it needs the entry's own views). "
        "Records per variant, a table and a plot go into the run folder.",
    )
    p.add_argument("name", help="zoo entry name (see `i3dbench zoo list`)")
    p.add_argument("--vary", action="append", required=True, metavar="KNOB=V1,V2",
                   help="a knob and its values (repeatable; the grid is their product, at most 32 variants)")
    p.add_argument("--zoo", type=Path, help="manifest file holding the entry (default: K400 zoo + smoke zoo)")
    p.add_argument("--data-root", type=Path, help="folder the list's paths are relative to (smoke: the synthetic set)")
    p.add_argument("--ann", type=Path, help="video or rawframe list of the test videos")
    p.add_argument("--data", type=Path, metavar="COPY.yaml",
                   help="the YAML describing your Kinetics-400 copy (default: $I3DBENCH_K400): the entry's own layout")
    p.add_argument("--rawframes-root", type=Path, help="decoder=rawframes: the JPEG copy of the same videos")
    p.add_argument("--rawframes-ann", type=Path, help="decoder=rawframes: its rawframe list")
    p.add_argument("--checkpoint", help="checkpoint file or URL (default: the entry's published checkpoint)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    p.add_argument("--decoder", choices=["decord", "pyav"], help="video decoder of the base (default decord)")
    p.add_argument("--workers", type=positive_int.allow_zero, default=2, help="data loading processes (0: in process)")
    p.add_argument("--out", type=Path, help="run folder (default: a new runs/<UTC time>-<host>/)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_sweep)

"""`i3dbench train`."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import nonneg_int, positive_float, positive_int, seed_int


def _cmd_train(args: argparse.Namespace) -> int:
    from ..train import is_main_process, train

    result = train(
        args.name,
        args.data_root,
        args.ann,
        args.work_dir or Path("work_dirs") / args.name,
        resume=args.resume,
        val_ann_file=args.val_ann,
        val_data_root=args.val_data_root,
        videos_per_gpu=args.videos_per_gpu,
        epochs=args.epochs,
        lr=args.lr,
        amp=args.amp,
        init=args.init,
        seed=args.seed,
        deterministic=args.deterministic,
        num_workers=args.workers,
        device=args.device,
        max_iters=args.max_iters,
        log_interval=args.log_interval,
        decoder=args.decoder,
        records_dir=args.records,
        write_record_file=not args.no_record,
        zoo=args.zoo,
    )
    if is_main_process():
        top1 = "n/a" if result.final_top1 is None else f"{result.final_top1:.2f}"
        print(f"val top1 {top1} | {result.epochs} epochs, {result.wall_time_s:.1f} s | checkpoint {result.checkpoint} "
              f"sha256 {result.checkpoint_sha256} | record {result.record_path}")
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train an entry with its published recipe (run under torchrun for DDP)",
        description="Train a zoo entry with its published recipe. Single process, or DDP under "
        "`torchrun --nproc-per-node N -m i3dbench.cli train ...`. Smoke entries (synthetic set) "
        "need no --data-root/--ann.",
    )
    p.add_argument("name", help="zoo entry name (see `i3dbench zoo list`)")
    p.add_argument("--zoo", type=Path, help="manifest file holding the entry (default: K400 zoo + smoke zoo)")
    p.add_argument("--data-root", type=Path, help="training videos / rawframes folder")
    p.add_argument("--ann", type=Path, help="training list file")
    p.add_argument("--val-data-root", type=Path, help="validation folder (default: --data-root)")
    p.add_argument("--val-ann", type=Path, help="validation list file (none: no validation)")
    p.add_argument("--work-dir", type=Path, help="checkpoints and logs (default: work_dirs/NAME)")
    p.add_argument("--resume", help="'auto' (newest complete checkpoint in --work-dir) or a checkpoint path")
    p.add_argument("--epochs", type=positive_int, help="override the recipe's epochs")
    p.add_argument("--videos-per-gpu", type=positive_int, help="override the recipe's videos per GPU (lr follows the linear scaling rule)")
    p.add_argument("--lr", type=positive_float, help="override the lr (no scaling rule then)")
    p.add_argument("--amp", choices=["bf16", "fp16"], help="autocast precision (default fp32)")
    p.add_argument("--init", help="2D ImageNet state_dict or MMAction2 checkpoint (file or URL), or 'none' "
                   "(default: the recipe's pretrained)")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--deterministic", action="store_true", help="deterministic kernels (bitwise-repeatable on CPU)")
    p.add_argument("--workers", type=nonneg_int, default=2, help="data loading processes per GPU/process")
    p.add_argument("--device", help="cpu, cuda, cuda:N (default: the local rank's GPU if any, else cpu)")
    p.add_argument("--max-iters", type=positive_int, help="stop after this many iterations in total (quick checks)")
    p.add_argument("--log-interval", type=positive_int, default=20, help="iterations per log line")
    p.add_argument("--decoder", help="video decoder (default: decord for videos, rawframes for frames)")
    p.add_argument("--records", type=Path, help="records folder for the train record (default: WORK_DIR/records)")
    p.add_argument("--no-record", action="store_true", help="do not write a train record")
    p.set_defaults(func=_cmd_train)

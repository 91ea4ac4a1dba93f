"""Why compare times both revisions in one process: how much of a step's speed each process draws.

    python dev/measure_process_effect.py [--entry smoke_i3d_tiny_video] [--children 20]

Each of ``--children`` processes (forked one after another from this one, which has imported
torch and i3dbench but built nothing) builds two copies of the entry's model, A and B (the same
code), warms them and steps them alternately for 0.5 s, one thread. Printed:

* the spread of A's median step time from process to process (what a process draws);
* the ratio A/B inside each process (what `compare`'s speed host sees for unchanged code);
* the ratio A of one process / B of the next (what a worker per revision saw).

A dev measurement (its figures go into notes, not into records): run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time


def _steps(entry_name: str):
    import torch

    from i3dbench.metrics import average_views
    from i3dbench.models import build_model
    from i3dbench.zoo import SMOKE_ZOO, load_zoo

    entry = load_zoo(SMOKE_ZOO)[entry_name]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn((entry.views_per_video, 3, entry.data.clip_len, entry.test.crop_size, entry.test.crop_size),
                    generator=gen)
    steps = []
    for _ in range(2):
        torch.manual_seed(0)
        model = build_model(entry).eval()

        def step(model=model):
            with torch.no_grad():
                s = model(x)
                return average_views(s, s.shape[0], entry.test.average_clips)

        steps.append(step)
    return steps


def _one_process(entry_name: str, seconds: float) -> list[float]:
    rnd = random.Random(os.getpid())
    a, b = _steps(entry_name)
    for _ in range(3):
        a()
        b()
    times: dict = {"a": [], "b": []}
    t_start = time.perf_counter()
    while time.perf_counter() - t_start < seconds:
        for name, step in rnd.sample([("a", a), ("b", b)], 2):
            t0 = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
    return [statistics.median(times["a"]), statistics.median(times["b"])]


def _in_child(fn) -> list[float]:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        with os.fdopen(write_fd, "w") as fh:
            fh.write(json.dumps(fn()))
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as fh:
        text = fh.read()
    os.waitpid(pid, 0)
    return json.loads(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entry", default="smoke_i3d_tiny_video")
    ap.add_argument("--children", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=0.5)
    args = ap.parse_args()
    import torch

    import i3dbench.models  # noqa: F401 - imported before the forks, built after

    torch.set_num_threads(1)
    res = [_in_child(lambda: _one_process(args.entry, args.seconds)) for _ in range(args.children)]

    def sd_pct(v):
        return 100 * statistics.stdev(v) / statistics.mean(v)

    a = [r[0] for r in res]
    same = [r[0] / r[1] for r in res]
    cross = [res[i][0] / res[i + 1][1] for i in range(0, len(res) - 1, 2)]
    print(f"{args.entry}, {args.children} processes, one thread, {args.seconds} s of alternating steps each")
    print(f"A's median step: {statistics.median(a) * 1e3:.2f} ms, process-to-process sd {sd_pct(a):.1f}% "
          f"(min {min(a) * 1e3:.2f}, max {max(a) * 1e3:.2f})")
    print(f"A/B in one process:      sd {sd_pct(same):.1f}%  " + " ".join(f"{r:.3f}" for r in same))
    print(f"A/B across two processes: sd {sd_pct(cross):.1f}%  " + " ".join(f"{r:.3f}" for r in cross))


if __name__ == "__main__":
    main()

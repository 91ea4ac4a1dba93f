"""One revision's side of ``i3dbench compare``: a long-lived process that measures the code of ONE tree.

The driver (compare.py) starts this file as a script with ``PYTHONPATH`` set to a revision's
tree, so ``import i3dbench`` below is *that revision's* package, not the driver's. The file
itself imports nothing of the driver's package: it is the measuring harness, the same for both
revisions of a compare, while everything it measures — model building, forward, view
averaging, checkpoint loading, evaluation — comes from the revision under test. It relies only
on names every revision has kept (the public API: ``load_zoo``, ``build_model``,
``load_checkpoint``; ``metrics.average_views``; ``evaluate.evaluate``; ``memory.cpu_tensor_peak``).

Protocol: one JSON object per line on stdin (a request), one per line on stdout (its answer:
``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``). Everything else the revision
prints goes to stderr, which the driver keeps in a log file. Requests:

* ``hello``: where ``i3dbench`` was imported from, torch version and threads.
* ``setup {entries, zoo}``: build and warm each entry's model once (seeded random weights: speed
  and memory do not depend on the weights) with one video's test views as a fixed input;
  ``setup_many {groups}``: that for several manifests, answering with ``hello``'s facts too.
* ``block {entry, seconds, min_iterations}``: time the published protocol's step (forward of one
  video's views + view averaging) until both minimums are met; returns every iteration time.
* ``fork_round`` / ``end_round``: a child process with fresh copies of the models serves the
  requests in between (one speed round), then exits.
* ``memory {entry}``: peak CPU tensor bytes of one step (the profiler's tensor allocations).
* ``eval {entry, data_root, ann, checkpoint, out}``: the revision's own evaluation of the list,
  with the entry's test protocol; returns the per-video predictions.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

# This file's folder (the driver's package) must not shadow the revision's modules.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != _HERE]
_TREE = os.environ.get("I3DBENCH_COMPARE_TREE")
if _TREE:
    sys.path.insert(0, _TREE)


class Worker:
    def __init__(self) -> None:
        self.models: dict = {}  # entry name -> (entry, model, views input, step)

    # ------------------------------------------------------------------ requests

    def hello(self) -> dict:
        import torch

        import i3dbench

        return {"i3dbench": str(Path(i3dbench.__file__).resolve()), "torch": torch.__version__,
                "threads": torch.get_num_threads(), "pid": os.getpid()}

    def setup(self, entries: list, zoo=None, warmup_s: float = 1.0, threads: int | None = None) -> dict:
        import torch

        if threads:
            torch.set_num_threads(int(threads))
        from i3dbench.models import build_model
        from i3dbench.zoo import load_zoo

        zoo_entries = load_zoo(zoo) if zoo else load_zoo()
        missing = [n for n in entries if n not in zoo_entries]
        if missing:
            raise KeyError(f"entries not in this revision's manifest {zoo or '(default)'}: {', '.join(missing)}")
        for name in entries:
            entry = zoo_entries[name]
            torch.manual_seed(0)
            model = build_model(entry).eval()
            gen = torch.Generator().manual_seed(0)
            shape = (3, entry.data.clip_len, entry.test.crop_size, entry.test.crop_size)
            x = torch.randn((entry.views_per_video,) + shape, generator=gen)
            self.models[name] = (entry, model, x, self._step(entry, model, x))
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < warmup_s:
                self.models[name][3]()
        return {"entries": list(entries), "threads": torch.get_num_threads()}

    def setup_many(self, groups: list, threads: int | None = None) -> dict:
        """``setup`` for each ``{"entries", "zoo"}`` group; answers with ``hello``'s facts too (a worker
        started mid-compare is set up by this one request)."""
        for g in groups:
            self.setup(g["entries"], g.get("zoo"), threads=threads)
        return {**self.hello(), "entries": list(self.models)}

    @staticmethod
    def _step(entry, model, x):
        import torch

        from i3dbench.metrics import average_views

        def step():
            with torch.no_grad():
                scores = model(x)
                return average_views(scores, scores.shape[0], entry.test.average_clips)

        return step

    def block(self, entry: str, seconds: float, min_iterations: int) -> dict:
        step = self.models[entry][3]
        times = []
        t_start = time.perf_counter()
        while len(times) < min_iterations or time.perf_counter() - t_start < seconds:
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        return {"times_s": times}

    def fork_round(self) -> dict:
        """Fork a child that serves the requests of one round, with fresh copies of every model and
        input, then exits at ``end_round``; this process waits meanwhile (see :func:`main`).

        Why: processes of the same code were measured up to ±20% apart for as long as they lived
        (where their memory landed, how the scheduler treats them), a bias between two revisions
        that no number of rounds inside one pair of processes removes. A child per round is a new
        process whose written pages (the copied weights, the activations) are its own, so that
        effect is drawn afresh every round and becomes noise the interval accounts for."""
        import copy

        sys.stdout.flush()
        pid = os.fork()
        if pid:
            _, status = os.waitpid(pid, 0)
            code = os.waitstatus_to_exitcode(status)
            if code != 0:
                raise RuntimeError(f"the round's child process exited with {code}")
            return {"_answered_by_child": True}
        import random

        import torch

        # Heap layout drawn afresh too (as Stabilizer does, Curtsinger & Berger 2013): the copies land
        # behind a random amount of padding, so that their alignment, like their pages, varies per round.
        rnd = random.Random(os.getpid())
        self._padding = (torch.empty(rnd.randrange(1, 1 << 18), dtype=torch.uint8), bytearray(rnd.randrange(1, 1 << 16)))
        for name, (entry, model, x, _) in list(self.models.items()):
            m, xc = copy.deepcopy(model), x.clone()
            self.models[name] = (entry, m, xc, self._step(entry, m, xc))
            for _ in range(2):  # first touches of the fresh copies, untimed
                self.models[name][3]()
        self.is_child = True
        return {"pid": os.getpid()}

    def end_round(self) -> dict:
        if not getattr(self, "is_child", False):
            raise RuntimeError("end_round outside a forked round")
        self.quit_after_answer = True
        return {}

    def memory(self, entry: str) -> dict:
        from i3dbench.memory import cpu_tensor_peak

        peak = cpu_tensor_peak(self.models[entry][3])
        return {"peak_bytes": peak, "kind": "cpu_tensor_peak"}

    def eval(self, entry: str, data_root: str, ann: str, checkpoint, out: str, zoo=None) -> dict:
        from i3dbench.evaluate import evaluate
        from i3dbench.zoo import load_zoo

        e = (load_zoo(zoo) if zoo else load_zoo())[entry]
        res = evaluate(e, data_root, ann, checkpoint=checkpoint, device="cpu", out=out, num_workers=1, fresh=True,
                       progress=False)
        rows = {}
        with open(res.predictions_path) as fh:
            for line in fh:
                if line.strip():
                    r = json.loads(line)
                    rows[int(r["i"])] = r
        listed = res.num_listed
        per_video = [None if (r := rows.get(i)) is None or "error" in r else
                     {"label": int(r["label"]), "top5": [int(v) for v in r["top5"]]} for i in range(listed)]
        return {"metrics": res.metrics, "num_listed": listed, "per_video": per_video,
                "predictions": str(res.predictions_path), "record": str(res.record_path) if res.record_path else None}


def main() -> int:
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything the revision prints goes to stderr, never into the protocol
    sys.stdout = sys.stderr
    worker = Worker()
    while True:
        line = sys.stdin.readline()  # one line at a time: nothing read ahead that a forked child would share
        if not line:
            break
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            op = req.pop("op")
            if op == "quit":
                break
            answer = {"ok": True, **getattr(worker, op)(**req)}
        except BaseException as err:  # noqa: BLE001 - every failure is an answer the driver reports
            traceback.print_exc()
            answer = {"ok": False, "error": f"{type(err).__name__}: {err}"}
        if answer.pop("_answered_by_child", False):
            continue  # a round's child answered everything of that round, this one included
        out.write(json.dumps(answer) + "\n")
        out.flush()
        if getattr(worker, "quit_after_answer", False):
            os._exit(0)  # a round's child: its round is over
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The measuring processes of ``i3dbench compare``: a harness that imports nothing of the driver's package.

The driver (compare.py) starts this file as a script, in two roles:

* a **revision worker**, one per revision, with ``PYTHONPATH`` set to that revision's tree, so
  ``import i3dbench`` below is *that revision's* package: it checks that the revision imports
  and builds, evaluates its accuracy and profiles its memory;
* the **speed host**, one per compare, which imports *both* revisions, each from its own tree
  and under its own set of ``sys.modules`` entries (see :class:`Side`), and times them
  iteration against iteration in the same process.

Why speed in one process: processes of the same code were measured 3.5-7% apart (standard
deviation of a process's median step, smoke model, one thread: dev/measure_process_effect.py)
for as long as they live, and a child forked from a warmed process inherits most of its parent's
draw; the ratio of two revisions measured in two processes carries the difference of two such
draws (±10-13% biases over whole compares of unchanged code, and a persistent "working tree"
offset). Two models stepped alternately in ONE process share most of whatever the process drew
(not isolated; candidates: JIT-compiled kernels, the allocator's reused activation buffers,
the physical pages behind them): their ratio's standard deviation from process to process was 1.4-3.0%, against 1.7-8.7%
across two processes (three runs of 20-30 forked processes, quiet and loaded). A round still
forks a fresh child with fresh copies of both models behind random
padding, so what a model's own placement adds is drawn afresh every round.

Isolation inside the speed host: each revision keeps its own modules (swapped into
``sys.modules`` before each of its steps, so a lazy import inside its forward resolves to its own
tree) and its own snapshot of torch's process-wide switches (:func:`_torch_state`, re-applied
before each of its steps), so a revision that flips one at import is measured with it.

Everything measured — model building, forward, view averaging, checkpoint loading, evaluation —
comes from the revision under test, through names every revision has kept (the public API:
``load_zoo``, ``build_model``; ``metrics.average_views``; ``evaluate.evaluate``;
``memory.cpu_tensor_peak``).

Protocol: one JSON object per line on stdin (a request), one per line on stdout (its answer:
``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``). Everything else the revision
prints goes to stderr, which the driver keeps in a log file. Requests:

* ``ping``: the process id (the speed host's first request: it imports no revision yet).
* ``hello``: where ``i3dbench`` was imported from, torch version and threads.
* ``setup {entries, zoo}``: build and warm each entry's model once (seeded random weights: speed
  and memory do not depend on the weights) with one video's test views as a fixed input;
  ``setup_many {groups}``: that for several manifests, answering with ``hello``'s facts too.
* ``memory {entry}``: peak CPU tensor bytes of one step (the profiler's tensor allocations).
* ``eval {entry, data_root, ann, checkpoint, out}``: the revision's own evaluation of the list,
  with the entry's test protocol; returns the per-video predictions.
* speed host: ``load_pair {sides, threads, seed}`` imports and sets up each side (``{role: {tree,
  label, groups}}``, in a random order); ``pair_round {entry, seconds, min_iterations, seed}``
  forks a child that times one round: the two revisions' steps alternate one by one, each pair in
  a random order (RMIT), for ``2 * seconds`` and at least ``min_iterations`` each.
"""

from __future__ import annotations

import os
import sys

# This file's folder (the driver's package: its bisect.py would shadow the standard library's)
# leaves sys.path before anything else is imported.
_HERE = os.path.dirname(os.path.realpath(__file__))
sys.path[:] = [p for p in sys.path if p and os.path.realpath(p) != _HERE]
_TREE = os.environ.get("I3DBENCH_COMPARE_TREE")
if _TREE:
    sys.path.insert(0, _TREE)

import importlib
import json
import random
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "i3dbench"


def _own_modules() -> dict:
    return {n: m for n, m in sys.modules.items() if n == PACKAGE or n.startswith(PACKAGE + ".")}


def _torch_state() -> dict:
    """torch's process-wide switches a revision could flip at import (all readable and settable back)."""
    import torch

    return {"mkldnn": torch.backends.mkldnn.enabled, "deterministic": torch.are_deterministic_algorithms_enabled(),
            "dtype": torch.get_default_dtype(), "matmul": torch.get_float32_matmul_precision(),
            "threads": torch.get_num_threads()}


def _apply_torch_state(state: dict) -> None:
    import torch

    torch.backends.mkldnn.enabled = state["mkldnn"]
    torch.use_deterministic_algorithms(state["deterministic"])
    torch.set_default_dtype(state["dtype"])
    torch.set_float32_matmul_precision(state["matmul"])
    if torch.get_num_threads() != state["threads"]:
        torch.set_num_threads(state["threads"])


@dataclass
class Side:
    """One revision inside the speed host: its tree, its modules, its torch switches, its models."""

    role: str
    label: str
    tree: str
    modules: dict
    torch_state: dict
    models: dict  # entry -> (entry, model, input)

    def enter(self) -> None:
        """Make this revision the one that ``import i3dbench...`` and torch's switches answer for."""
        sys.modules.update(self.modules)
        sys.path[0] = self.tree
        _apply_torch_state(self.torch_state)


class Worker:
    def __init__(self) -> None:
        self.models: dict = {}  # entry name -> (entry, model, views input, step)
        self.sides: dict = {}  # speed host: role -> Side

    # ------------------------------------------------------------------ a revision worker

    def ping(self) -> dict:
        return {"pid": os.getpid()}

    def hello(self) -> dict:
        import torch

        import i3dbench

        return {"i3dbench": str(Path(i3dbench.__file__).resolve()), "torch": torch.__version__,
                "threads": torch.get_num_threads(), "pid": os.getpid()}

    @staticmethod
    def _build(entries: list, zoo=None, warmup_s: float = 1.0) -> dict:
        """entry -> (entry, model, input) built and warmed by the revision that ``import i3dbench`` gives now."""
        import torch

        from i3dbench.models import build_model
        from i3dbench.zoo import load_zoo

        zoo_entries = load_zoo(zoo) if zoo else load_zoo()
        missing = [n for n in entries if n not in zoo_entries]
        if missing:
            raise KeyError(f"entries not in this revision's manifest {zoo or '(default)'}: {', '.join(missing)}")
        built = {}
        for name in entries:
            entry = zoo_entries[name]
            torch.manual_seed(0)
            model = build_model(entry).eval()
            gen = torch.Generator().manual_seed(0)
            shape = (3, entry.data.clip_len, entry.test.crop_size, entry.test.crop_size)
            x = torch.randn((entry.views_per_video,) + shape, generator=gen)
            built[name] = (entry, model, x)
            step = Worker._step(entry, model, x)
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < warmup_s:
                step()
        return built

    def setup(self, entries: list, zoo=None, threads: int | None = None) -> dict:
        import torch

        if threads:
            torch.set_num_threads(int(threads))
        for name, (entry, model, x) in self._build(entries, zoo).items():
            self.models[name] = (entry, model, x, self._step(entry, model, x))
        return {"entries": list(entries), "threads": torch.get_num_threads()}

    def setup_many(self, groups: list, threads: int | None = None) -> dict:
        """``setup`` for each ``{"entries", "zoo"}`` group; answers with ``hello``'s facts too."""
        for g in groups:
            self.setup(g["entries"], g.get("zoo"), threads=threads)
        return {**self.hello(), "entries": list(self.models)}

    @staticmethod
    def _step(entry, model, x):
        """The published protocol's step: forward of one video's views + view averaging (the averaging
        function of the revision that ``import i3dbench`` gives when the step is made)."""
        import torch

        from i3dbench.metrics import average_views

        def step():
            with torch.no_grad():
                scores = model(x)
                return average_views(scores, scores.shape[0], entry.test.average_clips)

        return step

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

    # ------------------------------------------------------------------ the speed host

    def load_pair(self, sides: dict, threads: int, seed: int) -> dict:
        """Import each side's revision from its own tree (in a random order: neither is always first in
        memory) and build and warm its models; answers where each imported ``i3dbench`` from."""
        import torch

        torch.set_num_threads(int(threads))
        pristine = _torch_state()
        sys.path.insert(0, "")  # the slot Side.enter points at each revision's tree
        facts = {}
        for role in random.Random(seed).sample(sorted(sides), len(sides)):
            spec = sides[role]
            _apply_torch_state(pristine)  # a switch the other side flipped at import is not this side's
            for name in _own_modules():
                del sys.modules[name]
            sys.path[0] = spec["tree"]
            importlib.invalidate_caches()
            try:
                import i3dbench

                where = str(Path(i3dbench.__file__).resolve())
                if not Path(where).is_relative_to(Path(spec["tree"]).resolve()):
                    raise ImportError(f"imported i3dbench from {where}, not from its tree {spec['tree']}")
                models = {}
                for g in spec["groups"]:
                    models.update(self._build(g["entries"], g.get("zoo")))
                torch.set_num_threads(int(threads))
            except Exception as err:
                raise RuntimeError(f"{spec['label']}: {type(err).__name__}: {err}") from err
            self.sides[role] = Side(role, spec["label"], spec["tree"], _own_modules(), _torch_state(), models)
            facts[role] = where
            print(f"speed host: {spec['label']} imported from {where}", file=sys.stderr, flush=True)
        return {"i3dbench": facts, "threads": torch.get_num_threads(), "pid": os.getpid()}

    def pair_round(self, entry: str, seconds: float, min_iterations: int, seed: int) -> dict:
        """One speed round of ``entry`` in a forked child (see the module docstring); answers every
        iteration's time per side and the child's pid."""
        read_fd, write_fd = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: time the round, write the answer into the pipe, exit
            os.close(read_fd)
            code = 0
            try:
                answer = {"ok": True, "times_s": self._timed_round(entry, seconds, min_iterations, seed)}
            except BaseException as err:  # noqa: BLE001 - reported to the driver through the parent
                traceback.print_exc()
                answer, code = {"ok": False, "error": f"{type(err).__name__}: {err}"}, 1
            with os.fdopen(write_fd, "w") as fh:
                fh.write(json.dumps(answer))
            os._exit(code)
        os.close(write_fd)
        with os.fdopen(read_fd) as fh:
            text = fh.read()
        _, status = os.waitpid(pid, 0)
        answer = json.loads(text) if text else {"ok": False, "error": f"exit code {os.waitstatus_to_exitcode(status)}"}
        if not answer.pop("ok"):
            raise RuntimeError(f"the round's child process failed: {answer['error']}")
        return {**answer, "pid": pid}

    def _timed_round(self, entry: str, seconds: float, min_iterations: int, seed: int) -> dict:
        import copy

        import torch

        rnd = random.Random(seed)
        # The copies land behind a random amount of padding (as Stabilizer does, Curtsinger & Berger 2013),
        # so that their alignment, like their pages, varies per round.
        self._padding = (torch.empty(rnd.randrange(1, 1 << 18), dtype=torch.uint8), bytearray(rnd.randrange(1, 1 << 16)))
        steps = {}
        for role in rnd.sample(sorted(self.sides), len(self.sides)):
            side = self.sides[role]
            side.enter()
            e, model, x = side.models[entry]
            m, xc = copy.deepcopy(model), x.clone()
            steps[role] = self._step(e, m, xc)
            for _ in range(2):  # first touches of the fresh copies, untimed
                steps[role]()
        times: dict = {role: [] for role in steps}
        roles = sorted(steps)
        t_start = time.perf_counter()
        while min(len(v) for v in times.values()) < min_iterations or time.perf_counter() - t_start < 2 * seconds:
            for role in rnd.sample(roles, len(roles)):
                self.sides[role].enter()
                t0 = time.perf_counter()
                steps[role]()
                times[role].append(time.perf_counter() - t0)
        return times


def main() -> int:
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything the revision prints goes to stderr, never into the protocol
    sys.stdout = sys.stderr
    worker = Worker()
    while True:
        line = sys.stdin.readline()
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
        out.write(json.dumps(answer) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

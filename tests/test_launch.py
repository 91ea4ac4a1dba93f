"""`i3dbench run --launcher slurm` through submitit without a cluster, and `run --plan`.

The end-to-end test runs the real command with submitit's LocalExecutor (``--slurm-executor
local``): each input group of the smoke zoo is one job, a separate process. One job is killed
(SIGKILL) and the other pre-empted (submitit's pre-emption signal) after a known number of
rows; the run must resubmit the first and submitit must requeue the second, each new job must
resume the partial predictions and compute only the rest, and the numbers must equal those of
an uninterrupted in-process run, with no video counted twice.

The interruptions are planted from here: ``runner.EvalGroupTask`` is replaced by a subclass
that, in the job's own process, wraps ``evaluate.append_rows`` to signal itself once
``KILL_AFTER`` rows per entry are durably written. The subclass reaches the job by value
(cloudpickle), so the job runs the package's own code plus this hook; the package knows
nothing of tests.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from cli_harness import run_cli

from i3dbench import runner
from i3dbench.errors import EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, UserError
from i3dbench.records import load_records

pytest.importorskip("submitit")

REPO = Path(__file__).resolve().parent.parent
ZOO = REPO / "zoo" / "smoke.yaml"
VIDEO_GROUP = ("smoke_i3d_tiny_video", "smoke_i3d_nl_tiny_video")  # one input group: 2 models, one decode
RAW_GROUP = ("smoke_i3d_tiny_rawframes_lazy",)
KILL_AFTER = 3  # rows per entry written before the first job of the video group is killed


def _arm(task, sig: int) -> None:
    """In the job's process: send ``sig`` to ourselves right after the KILL_AFTER-th row of every entry
    is on disk (the partial files then hold exactly KILL_AFTER rows each)."""
    from i3dbench import evaluate

    real, calls = evaluate.append_rows, [0]

    def append_then_die(fh, rows):
        real(fh, rows)
        calls[0] += 1
        if calls[0] == KILL_AFTER * len(task.entries):
            os.kill(os.getpid(), sig)

    evaluate.append_rows = append_then_die


class Interrupted(runner.EvalGroupTask):
    """The video group's first job dies by SIGKILL mid-run (a node failure, the OOM killer); the
    rawframes group's job gets submitit's pre-emption signal mid-run (while no partial file of it
    existed yet), and submitit checkpoints the task and requeues the job, which then runs unarmed."""

    def run_job(self):
        import signal

        from submitit.local.local import LocalJobEnvironment

        if self.entries[0].name == VIDEO_GROUP[0] and self.attempt == 1:
            _arm(self, signal.SIGKILL)
        if self.entries[0].name == RAW_GROUP[0] and not list(self.run.predictions.glob(f"{RAW_GROUP[0]}-*.partial.jsonl")):
            _arm(self, LocalJobEnvironment._usr_sig())
        return super().run_job()


@pytest.fixture
def world(tmp_path, monkeypatch):
    """A tiny synthetic set (3 classes x 3 val videos, both formats) that jobs read by path, and
    job processes that import this checkout and unpickle this module's task classes by value."""
    import cloudpickle

    from i3dbench import provenance
    from i3dbench.data.synthetic import CLASSES, generate_synthetic, synthetic_paths

    monkeypatch.delenv("I3DBENCH_K400_ROOT", raising=False)
    root = tmp_path / "synthetic"
    generate_synthetic(root, videos_per_class=1, val_videos_per_class=3, num_frames=20, sizes=("340x256",),
                       formats=("videos", "rawframes"), classes=CLASSES[:3], workers=1, progress=False)
    # The main process computes each job's data paths (jobs get them as arguments, not from here).
    monkeypatch.setattr(runner, "smoke_data",
                        lambda e, split="val", generate=True: synthetic_paths(root, e.data.format, e.data.resolution, split))
    monkeypatch.setattr(provenance, "environment_report", lambda: "env\n")  # collect_env takes seconds
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield tmp_path
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def _sealed(run: Path, entry: str) -> list[dict]:
    (path,) = (run / "predictions").glob(f"{entry}-*.jsonl")
    assert not path.name.endswith(".partial.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def _evals(run: Path) -> dict[str, dict]:
    recs = [r for r in load_records(run) if r["kind"] == "eval"]
    assert len(recs) == len({r["entry"] for r in recs}), "one eval record per entry"
    return {r["entry"]: r for r in recs}


def _local_reference(world: Path) -> dict[str, dict]:
    res = run_cli(["run", "--zoo", ZOO, "--no-bench", "--no-sweep", "--workers", "0", "--quiet", "--out", world / "local"],
                  expect_rc=0)
    assert "Traceback" not in res.out
    return _evals(world / "local")


def _slurm_run(world: Path, out: Path) -> str:
    res = run_cli(["run", "--zoo", ZOO, "--launcher", "slurm", "--slurm-executor", "local", "--gpus-per-node", "0",
                   "--no-bench", "--workers", "0", "--out", out], expect_rc=0)
    return res.out


def _check_same_numbers(run: Path, reference: dict[str, dict]) -> dict[str, dict]:
    evals = _evals(run)
    assert sorted(evals) == sorted(VIDEO_GROUP + RAW_GROUP)
    for name, ref in reference.items():
        rows = _sealed(run, name)
        assert [r["i"] for r in rows] == list(range(9)), f"{name}: exactly one row per listed video"
        assert [r["top5"] for r in rows] == [r["top5"] for r in _sealed(run.parent / "local", name)]
        got = evals[name]
        assert got["extra"]["run_key"] == ref["extra"]["run_key"]
        for key in ("top1", "top5", "mean_class_accuracy", "num_videos"):
            assert got["metrics"][key] == ref["metrics"][key], (name, key)
        assert got["extra"]["per_video"] == ref["extra"]["per_video"]
    return evals


@pytest.mark.slow
def test_slurm_launcher_resumes_a_killed_and_a_preempted_job_without_double_counting(world, monkeypatch):
    reference = _local_reference(world)
    monkeypatch.setattr(runner, "EvalGroupTask", Interrupted)
    out = _slurm_run(world, world / "slurm-run")
    run = world / "slurm-run"
    jobs = {tuple(j["task"].removeprefix("eval ").split(", ")): j for j in json.loads((run / "slurm" / "jobs.json").read_text())}
    assert set(jobs) == {VIDEO_GROUP, RAW_GROUP}, "one job per input group"
    killed, preempted = jobs[VIDEO_GROUP], jobs[RAW_GROUP]
    # killed: the job ended without a result, and we submitted it again
    assert len(killed["job_ids"]) == 2 and "ended without a result" in killed["attempts"][0], killed
    assert killed["attempts"][1] == "ok"
    assert "resubmitting" in out and "resubmitted 1x" in out
    # pre-empted: submitit checkpointed the task and requeued the same job (no resubmission by us)
    (job_id,) = preempted["job_ids"]
    assert preempted["attempts"] == ["ok"]
    log = (run / "slurm" / job_id / f"{job_id}_0_log.out").read_text()
    assert "this job is preempted" in log and "Requeued job" in log
    for job_id in killed["job_ids"] + preempted["job_ids"]:  # submitit's files and logs stay in the run folder
        assert (run / "slurm" / job_id / f"{job_id}_0_log.err").exists()
    # the resumed jobs decoded and scored only the videos that were left (their progress bars' totals)
    left = f"{9 - KILL_AFTER}/{9 - KILL_AFTER} ["
    assert left in (run / "slurm" / killed["job_ids"][1] / f"{killed['job_ids'][1]}_0_log.err").read_text()
    assert left in (run / "slurm" / job_id / f"{job_id}_0_log.err").read_text()
    evals = _check_same_numbers(run, reference)
    for name in VIDEO_GROUP + RAW_GROUP:
        assert evals[name]["obtained"]["how"] == "resumed", name
        assert evals[name]["obtained"]["rows_reused"] == KILL_AFTER, name
        assert evals[name]["obtained"]["rows_computed"] == 9 - KILL_AFTER, name
    assert not list((run / "predictions").glob("*.partial.jsonl"))


@pytest.mark.slow
def test_a_job_with_several_tasks_shards_the_videos_as_torchrun(world):
    """--gpus-per-node 2 on CPU (gloo): the job runs 2 tasks, submitit's TorchDistributedEnvironment
    makes them ranks 0 and 1, each evaluates every other video, rank 0 writes the record."""
    only = ["--only", RAW_GROUP[0], "--no-bench", "--workers", "0", "--device", "cpu"]
    run_cli(["run", "--zoo", ZOO, *only, "--quiet", "--out", world / "local"], expect_rc=0)
    run_cli(["run", "--zoo", ZOO, *only, "--launcher", "slurm", "--slurm-executor", "local", "--gpus-per-node", "2",
             "--out", world / "ddp"], expect_rc=0)
    (job,) = json.loads((world / "ddp" / "slurm" / "jobs.json").read_text())
    (job_id,) = job["job_ids"]
    logs = world / "ddp" / "slurm" / job_id
    assert "global_rank=1(2)" in (logs / f"{job_id}_1_log.out").read_text()
    assert "5/5 [" in (logs / f"{job_id}_0_log.err").read_text()  # rank 0's share: videos 0, 2, 4, 6, 8
    (ref,), (got,) = load_records(world / "local"), load_records(world / "ddp")
    assert got["metrics"] == ref["metrics"] and got["extra"]["per_video"] == ref["extra"]["per_video"]
    assert [r["i"] for r in _sealed(world / "ddp", RAW_GROUP[0])] == list(range(9))
    assert not (world / "ddp" / "slurm" / "%j").exists()


def test_slurm_launcher_runs_the_bench_step_as_a_job_after_the_evaluations(world, monkeypatch):
    """submitit's DebugExecutor runs each job in this process: the run's eval job, then its bench job."""
    from i3dbench import measure
    from i3dbench.launch import SlurmOptions
    from i3dbench.timing import LoopBudget

    tiny = LoopBudget(warmup_iterations=1, warmup_s=0.0, min_iterations=3, min_seconds=0.0)
    pair = measure.bench_pair
    monkeypatch.setattr(measure, "bench_pair", lambda e, d, **kw: pair(e, d, **{**kw, "budget": tiny,
                                                                                "train_memory": False}))
    summary = runner.run_all(zoo=ZOO, only=RAW_GROUP[0], out=world / "run", num_workers=0, progress=False,
                             launcher="slurm", slurm=SlurmOptions(executor="debug", gpus_per_node=0, poll_s=0.0))
    assert summary.exit_code == 0, summary.errors
    assert [rep.label for rep in summary.jobs] == [f"eval {RAW_GROUP[0]}", "bench"]
    recs = load_records(world / "run")
    assert sorted((r["kind"], r["method"]["protocol"]) for r in recs) == [
        ("bench", "fast"), ("bench", "published"), ("eval", "2x3-prob-sampler1.x")]
    assert sorted(summary.records) == sorted((world / "run" / "records").glob("*.json"))
    assert RAW_GROUP[0] in summary.table and (world / "run" / "report" / "README.md").exists()


# --------------------------------------------------------------------------- the waiting loop, in process


class Flaky:
    """A task for submitit's DebugExecutor (runs in this process): fails ``fails`` times with ``error``."""

    def __init__(self, error, fails: int, attempt: int = 1):
        self.error, self.fails, self.attempt = error, fails, attempt

    label = "flaky"

    def __call__(self):
        from i3dbench.launch import JobTask

        task = JobTask()
        task.run_job = lambda: self._run()
        return task()

    def _run(self):
        if self.attempt <= self.fails:
            raise self.error
        return "done"

    def resubmitted(self):
        return Flaky(self.error, self.fails, self.attempt + 1)


def _debug_options(**kw):
    from i3dbench.launch import SlurmOptions

    return SlurmOptions(executor="debug", gpus_per_node=0, poll_s=0.0, **kw)


def test_an_internal_error_is_resubmitted_until_the_retries_run_out(tmp_path):
    from i3dbench.launch import run_tasks

    (ok,) = run_tasks([Flaky(RuntimeError("transient"), fails=2)], _debug_options(max_retries=2), tmp_path)
    assert (ok.value, ok.code, len(ok.job_ids)) == ("done", EXIT_OK, 3)
    (bad,) = run_tasks([Flaky(RuntimeError("always"), fails=9)], _debug_options(max_retries=1), tmp_path)
    assert bad.code == EXIT_INTERNAL and len(bad.job_ids) == 2 and "RuntimeError: always" in bad.error


def test_a_usage_error_is_not_resubmitted(tmp_path):
    from i3dbench.launch import run_tasks

    (rep,) = run_tasks([Flaky(UserError("--ann x.txt: no such list"), fails=1)], _debug_options(max_retries=2), tmp_path)
    assert rep.code == EXIT_USAGE and len(rep.job_ids) == 1 and "x.txt" in rep.error
    assert json.loads((tmp_path / "jobs.json").read_text())[0]["code"] == EXIT_USAGE


# --------------------------------------------------------------------------- flags


def test_slurm_flags_are_refused_without_the_slurm_launcher(tmp_path):
    run_cli(["run", "--zoo", ZOO, "--partition", "gpu", "--out", tmp_path / "r"], must_name=["--partition", "--launcher slurm"],
            watch=[tmp_path])
    run_cli(["run", "--zoo", ZOO, "--launcher", "slurm", "--slurm-executor", "local", "--slurm-option", "nonsense",
             "--out", tmp_path / "r"], must_name=["--slurm-option", "nonsense", "KEY=VALUE"], watch=[tmp_path])


def test_slurm_launcher_without_sbatch_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    run_cli(["run", "--zoo", ZOO, "--launcher", "slurm", "--out", tmp_path / "r"], must_name=["sbatch", "--launcher local"],
            watch=[tmp_path])


def test_slurm_options_reach_the_sbatch_script(tmp_path, monkeypatch):
    """The flags, through submitit's real Slurm executor, up to a stand-in sbatch that keeps the script."""
    from i3dbench.launch import (
        SlurmOptions,
        check_options,
        make_executor,
        parse_slurm_options,
    )

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool, body in {"srun": "exit 0", "sbatch": f'cp "${{@: -1}}" {tmp_path}/script.sh; echo "Submitted batch job 4242"'}.items():
        (bin_dir / tool).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", os.pathsep.join([str(bin_dir), os.environ["PATH"]]))
    extra = parse_slurm_options(["account=abc", "--constraint=a100", "exclusive="])
    assert extra == {"account": "abc", "constraint": "a100", "exclusive": True}
    options = SlurmOptions(partition="gpu", gpus_per_node=4, cpus_per_task=8, time_limit_min=90, extra=extra)
    check_options(options)
    job = make_executor(options, tmp_path / "slurm").submit(print, "hello")
    assert job.job_id == "4242" and (tmp_path / "slurm" / "4242").is_dir()  # submitit's files under <run>/slurm/<id>/
    script = (tmp_path / "script.sh").read_text()
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=4", "#SBATCH --ntasks-per-node=4",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --time=90", "#SBATCH --nodes=1", "#SBATCH --account=abc",
                 "#SBATCH --constraint=a100", "#SBATCH --exclusive", "submitit.core._submit"):
        assert line in script, (line, script)


# --------------------------------------------------------------------------- --plan


def test_projection_formulas():
    from i3dbench.plan import GroupCost, project, with_model_time

    def cost(label, videos, decode, resize, device):
        return GroupCost(label, [label], videos, decode, resize, device)

    a, b, c = cost("a", 100, 0.4, 0.01, 0.09), cost("b", 10, 1.0, 0.0, 1.0), cost("c", 50, 0.1, 0.0, 0.2)
    # workers overlap decoding with the model: max(decode / workers, resize + device) per video
    local = project([a, b, c], workers=2, launcher="local")
    assert local.group_s == pytest.approx([100 * 0.2, 10 * 1.0, 50 * 0.2])
    assert local.total_s == pytest.approx(40.0) and "sum over groups" in local.formula
    # workers = 0: everything in one process, one after the other
    assert project([a], workers=0).total_s == pytest.approx(100 * 0.5)
    # slurm: one job per group; with enough nodes the longest group, else longest first onto the least-loaded node
    assert project([a, b, c], workers=2, launcher="slurm", nodes=3).total_s == pytest.approx(20.0)
    assert project([a, b, c], workers=2, launcher="slurm", nodes=2).total_s == pytest.approx(20.0)  # b + c on one
    assert project([a, b, c], workers=2, launcher="slurm", nodes=1).total_s == pytest.approx(40.0)
    assert project([a], workers=2, launcher="slurm", gpus_per_node=4).total_s == pytest.approx(5.0)
    unknown = GroupCost("k400", ["x"], None, 1.0, 0.0, 1.0, basis={"videos": "unknown: no list"})
    assert project([a, unknown], workers=2).missing == ["k400: videos"]
    # what-if: another device's seconds per video and entry (e.g. a GPU's), for 16 cores + 1 GPU per node
    (gpu,) = with_model_time([cost("g", 1000, 0.3, 0.0, 9.0)], model_s_per_video=0.05)
    assert project([gpu], workers=15).total_s == pytest.approx(1000 * 0.05)
    assert project([gpu, gpu], workers=15, launcher="slurm", nodes=8).total_s == pytest.approx(1000 * 0.05)
    # two groups may share a label (input_label omits the JPEG backend): each still counts
    assert project([a, cost("a", 100, 0.4, 0.01, 0.09)], workers=2).total_s == pytest.approx(40.0)
    # a CPU device: the model's forward uses every core, the loaders take their time from it (no overlap)
    on_cpu = GroupCost("a", ["a"], 100, 0.4, 0.01, 0.09, overlap=False)
    assert project([on_cpu], workers=2).total_s == pytest.approx(100 * 0.5)
    assert "(decode_s + resize_s + device_s)" in project([on_cpu], workers=2).formula


def test_plan_adds_up_the_probes_per_group(world, monkeypatch):
    """device_s = each entry's forward of a whole video's views + the views once per normalisation;
    setup_s = each entry's model build and first-call excess, added once to the group."""
    from i3dbench import plan as plan_mod
    from i3dbench.zoo import load_zoo

    monkeypatch.setattr(plan_mod, "probe_input", lambda e, root, ann, **kw: {
        "decode_s": 0.3, "resize_s": 0.01, "views_s": 0.02, "videos": 1, "frames_per_video": 16.0,
        "decoder": "x", "listed": 9})
    monkeypatch.setattr(plan_mod, "probe_forward",
                        lambda e, device="cpu", views=None: {VIDEO_GROUP[0]: (3.0, 1.0)}.get(e.name, (1.5, 0.5)))
    monkeypatch.setattr(plan_mod, "probe_loader_start", lambda e, root, ann: 0.25)
    costs = plan_mod.make_plan(load_zoo(ZOO), device="cpu").costs
    assert [c.entries for c in costs] == [list(VIDEO_GROUP), list(RAW_GROUP)]
    video, raw = costs
    assert (video.videos, video.decode_s, video.resize_s) == (9, 0.3, 0.01)
    assert video.device_s == pytest.approx(3.0 + 1.5 + 0.02)  # each entry's 2x3 views in one forward; one normalisation
    assert raw.device_s == pytest.approx(3.0 + 0.02)  # the same architecture as VIDEO_GROUP[0]: probed once
    assert (video.setup_s, raw.setup_s) == (pytest.approx(1.5), pytest.approx(1.0))
    # the setup is paid once per group (and rank), not per video; with workers, their start-up too
    assert plan_mod.group_seconds(video, workers=0) == pytest.approx(9 * (0.3 + 0.01 + 4.52) + 1.5)
    assert plan_mod.group_seconds(video, workers=2) == pytest.approx(9 * (0.3 + 0.01 + 4.52) + 1.5 + 0.25)
    given = plan_mod.make_plan(load_zoo(ZOO), device="cpu", model_s_per_video=2.0).costs[0]
    assert given.device_s == pytest.approx(4.0) and given.basis["device"].startswith("given")


def test_the_projection_uses_the_whole_loop_timed_with_its_own_workers(world, monkeypatch):
    """On a CPU the loading processes and the forward contend for the cores: a group whose evaluation loop
    was timed with the run's workers is projected from that time, not from the costs summed; with other
    workers, from the sum (and the plan says the loop's time was not used)."""
    from i3dbench import plan as plan_mod
    from i3dbench.zoo import load_zoo

    monkeypatch.setattr(plan_mod, "probe_input", lambda e, root, ann, **kw: {
        "decode_s": 0.3, "resize_s": 0.01, "views_s": 0.02, "videos": 1, "frames_per_video": 16.0,
        "decoder": "x", "listed": 9})
    monkeypatch.setattr(plan_mod, "probe_forward", lambda e, device="cpu", views=None: (1.0, 0.5))
    monkeypatch.setattr(plan_mod, "probe_loader_start", lambda e, root, ann: 0.25)
    calls = []

    def loop(group, root, ann, *, device, workers, per_video_guess):
        calls.append((tuple(e.name for e in group), workers, per_video_guess))
        return 2.5, 7

    monkeypatch.setattr(plan_mod, "probe_pipeline", loop)
    plan = plan_mod.make_plan(load_zoo(ZOO), device="cpu", workers=2)
    assert [c[:2] for c in calls] == [(tuple(VIDEO_GROUP), 2), (tuple(RAW_GROUP), 2)]
    video = plan.costs[0]
    assert calls[0][2] == pytest.approx(0.3 + 0.01 + 2.02)  # the summed costs guide the loop's length
    assert (video.pipeline_s, video.pipeline_workers) == (2.5, 2) and "over 7 and 14 videos" in video.basis["pipeline"]
    assert plan_mod.group_seconds(video, workers=2) == pytest.approx(9 * 2.5 + video.setup_s + 0.25)
    assert plan_mod.group_seconds(video, workers=1) == pytest.approx(9 * (0.3 + 0.01 + 2.02) + video.setup_s + 0.25)
    projection = plan_mod.project(plan.costs, workers=1)
    assert "not used: the projection has 1" in plan_mod.describe(plan, projection)
    assert "the whole loop's measured s/video" in plan_mod.project(plan.costs, workers=2).formula
    # no workers given (the Python API's default): nothing more is run
    calls.clear()
    assert plan_mod.make_plan(load_zoo(ZOO), device="cpu").costs[0].pipeline_s is None and not calls


def test_plan_probes_each_group_and_evaluates_nothing(world):
    res = run_cli(["run", "--zoo", ZOO, "--plan", "--workers", "1", "--probe-videos", "2", "--quiet",
                   "--out", world / "never"], expect_rc=0, watch=[world, REPO / "results", REPO / "zoo"])
    assert not (world / "never").exists()
    blocks = res.out.split("\ngroup ")[1:]
    assert len(blocks) == 2
    for names, block in zip((VIDEO_GROUP, RAW_GROUP), blocks):
        assert f"entries ({len(names)}): {', '.join(names)}" in block
        assert "videos: 9 (listed in" in block
        assert "measured: median of 2 videos of the list" in block and "measured on cpu: one forward of a whole video's views per entry" in block
        assert "  setup: " in block and "  loader start: " in block
        # the evaluation's own loop, timed with the run's loading processes, is what the projection uses
        assert "  whole loop: " in block and "/video with 1 loading process(es) (measured: the evaluation's loop" in block
    assert ("formula: local = sum over groups of videos x the whole loop's measured s/video + setup_s + loader_start_s; "
            "workers = 1") in res.out
    slurm = run_cli(["run", "--zoo", ZOO, "--plan", "--launcher", "slurm", "--slurm-executor", "local", "--cpus-per-task",
                     "4", "--model-s-per-video", "0.25", "--probe-videos", "1", "--quiet"], expect_rc=0)
    assert "device: 0.5 s/video (given: --model-s-per-video 0.25 per entry (x 2)" in slurm.out
    assert "slurm = busiest of 2 node(s)" in slurm.out and "workers = 3" in slurm.out


def test_plan_of_a_kinetics_group_without_a_copy_says_what_it_needs(world):
    res = run_cli(["run", "--plan", "--only", "i3d_r50_32x2x1_100e_kinetics400_rgb", "--model-s-per-video", "0.5",
                   "--probe-videos", "1", "--quiet"], expect_rc=0)
    assert "videos: ? (unknown: no Kinetics-400 list (set I3DBENCH_K400_ROOT / I3DBENCH_K400_ANN" in res.out
    assert "decode:" in res.out and "estimate: no Kinetics-400 copy" in res.out
    assert "left out: " in res.out
    with_n = run_cli(["run", "--plan", "--only", "i3d_r50_32x2x1_100e_kinetics400_rgb", "--model-s-per-video", "0.5",
                      "--assume-videos", "1000", "--probe-videos", "1", "--quiet"], expect_rc=0)
    assert "given: --assume-videos 1000" in with_n.out and "left out" not in with_n.out


def test_plan_flags_need_plan(tmp_path):
    run_cli(["run", "--zoo", ZOO, "--model-s-per-video", "1", "--out", tmp_path / "r"],
            must_name=["--model-s-per-video", "--plan"], watch=[tmp_path])


def test_the_plan_probe_times_what_the_evaluation_runs(monkeypatch):
    """probe_forward forwards a whole video's views in one batch (as evaluate._score does, not one view
    times the views) and counts the model build and the first call's extra cost as setup, apart
    from the steady per-video time."""
    import time as _time

    import torch

    from i3dbench import plan as plan_mod
    from i3dbench import timing
    from i3dbench.zoo import get_entry

    entry = get_entry("smoke_i3d_tiny_video")  # 2x3 views of 8 x 48 x 48
    seen = []

    class Recorder(torch.nn.Module):
        def forward(self, x):
            seen.append(tuple(x.shape))
            _time.sleep(0.3 if len(seen) == 1 else 0.01 * x.shape[0])  # the first call creates primitives
            return x.mean()

    def build(e, seed=0):
        _time.sleep(0.2)
        return Recorder()

    monkeypatch.setattr(timing, "random_model", build)
    per_video, setup = plan_mod.probe_forward(entry, "cpu")
    assert set(seen) == {(entry.views_per_video, 3, entry.data.clip_len, entry.test.crop_size, entry.test.crop_size)}
    assert len(seen) >= 5  # first call, one warm-up, at least 3 timed
    assert 0.06 <= per_video < 0.2  # 6 views x 0.01 s: the steady call, not the first
    assert setup >= 0.2 + 0.3 - per_video  # the build and the first call's excess
    # a forward slower than SLOW_FORWARD_S (30 full-size views on a CPU) is timed once: its first call
    seen.clear()
    monkeypatch.setattr(plan_mod, "SLOW_FORWARD_S", 0.1)
    per_video, setup = plan_mod.probe_forward(entry, "cpu")
    assert len(seen) == 1 and per_video >= 0.3 and 0.2 <= setup < 0.3


def test_a_group_run_skips_on_a_cpu_is_probed_with_one_view_and_labelled_an_estimate(monkeypatch):
    """A Kinetics-400 group on a CPU (run skips it there): one view is timed (what `eval --views 1x1`
    runs; a whole video's 30 full-size views would cost tens of seconds per architecture), scaled by the
    views and labelled an estimate; on CUDA the whole video's views are timed."""
    from i3dbench import plan as plan_mod
    from i3dbench.zoo import load_zoos

    name = "i3d_r50_32x2x1_100e_kinetics400_rgb"
    calls = []
    monkeypatch.setattr(plan_mod, "probe_input", lambda e, root, ann, **kw: {
        "decode_s": 0.3, "resize_s": 0.01, "views_s": 0.02, "videos": 1, "frames_per_video": 16.0,
        "decoder": "x", "listed": 9})
    monkeypatch.setattr(plan_mod, "probe_forward",
                        lambda e, device="cpu", views=None: calls.append((device, views)) or (0.5, 0.1))
    monkeypatch.setattr(plan_mod, "probe_loader_start", lambda e, root, ann: 0.25)

    class Copy:  # a data.k400copy.K400Copy with the entry's layout
        def for_entry(self, e):
            return ("root", "list")

    entries = {name: load_zoos()[name]}
    (cost,) = plan_mod.make_plan(entries, device="cpu", k400=Copy()).costs
    assert calls == [("cpu", 1)] and cost.device_s == pytest.approx(0.5 * 30 + 0.02)
    assert cost.basis["device"].startswith("estimate: run skips this group on cpu")
    calls.clear()
    (cost,) = plan_mod.make_plan(entries, device="cuda", k400=Copy()).costs
    assert calls == [("cuda", None)] and cost.device_s == pytest.approx(0.5 + 0.02)
    assert cost.basis["device"].startswith("measured on cuda: one forward of a whole video's views")

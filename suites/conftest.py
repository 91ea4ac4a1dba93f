"""The benchmark suites: ``pytest suites/ --benchmark [--quick] [--zoo FILE] [--only NAMES] [--device D] [--out DIR]``.

Options (ours; ``--benchmark`` is not a pytest-benchmark flag):
  --benchmark   turn on the heavy suite (accuracy, speed and memory, the gate's power); without
                it only the fast checks run (manifest valid, every model builds)
  --quick       CI-sized: short timed loops, 2 gate-power trials, the perf suites that take
                minutes skipped (each says so); compares the code under test with the revision
                the published reference was measured at (test_compare_ci.py)
  --zoo FILE    manifest whose entries parametrise the tests (default: K400 zoo + smoke zoo)
  --only NAMES  comma-separated entry names or shell patterns
  --device D    cpu | cuda | cuda:N (default: cuda when available)
  --out DIR     the run folder (default: a new ``runs/<UTC time>-<host>/``, see i3dbench.runs)

Everything a session measures goes into its run folder, and nowhere else: ``records/``,
``predictions/``, ``perf/`` (JSON with provenance), ``compare/`` (test_compare_ci), ``env.txt`` and ``report/``,
rendered at the end of the session from ``records/`` (a failing render fails the session).
The run folder is created on first use: the fast checks alone create none.

pytest-benchmark's ``--benchmark-only`` is refused: no suite here times with its fixture
(they need interleaved, time-based loops and records), so it would skip every test and exit 0.
"""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest

BENCHMARK_ONLY_HINT = (
    "this project's heavy suite is `pytest suites/ --benchmark` (CI-sized: add --quick); "
    "--benchmark-only would skip every suite that does not time with pytest-benchmark's fixture, "
    "which is all of them"
)


def pytest_addoption(parser):
    g = parser.getgroup("i3dbench", "i3dbench benchmark suites")
    g.addoption("--benchmark", action="store_true", default=False,
                help="run the heavy benchmark suite (accuracy, speed, memory, gate power); default: fast checks only")
    g.addoption("--quick", action="store_true", default=False,
                help="with --benchmark: CI-sized budgets; skips the perf suites that take minutes; "
                     "compares the code under test with the published reference's revision")
    g.addoption("--zoo", default=None, help="zoo manifest (default: K400 zoo + smoke zoo)")
    g.addoption("--only", default=None, help="comma-separated entry names or shell patterns")
    g.addoption("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when available)")
    g.addoption("--out", default=None, help="run folder (default: a new runs/<UTC time>-<host>/)")


def pytest_configure(config):
    # Refused whatever else is given: with it, every test here is skipped and pytest exits 0.
    if config.getoption("benchmark_only", default=False):
        raise pytest.UsageError(BENCHMARK_ONLY_HINT)
    if config.getoption("--quick") and not config.getoption("--benchmark"):
        raise pytest.UsageError("--quick sizes the heavy suite: give it together with --benchmark "
                                "(`pytest suites/ --benchmark --quick`)")
    config.addinivalue_line("markers", "heavy: part of the heavy benchmark suite (needs --benchmark)")
    config.addinivalue_line("markers", "perf: takes minutes (skipped with --quick)")
    config.addinivalue_line("markers", "last: runs after every other test of the session")
    config.stash[_STATE] = _State()


class _State:
    """What a session shares: its run folder (opened on first use) and how to re-measure what it recorded."""

    def __init__(self):
        self.run = None
        self.report_path = None
        self.report_error = None


_STATE = pytest.StashKey[_State]()


def pytest_generate_tests(metafunc):
    if "zoo_entry" in metafunc.fixturenames:
        from suite_support import selected_entries

        entries = selected_entries(metafunc.config)
        metafunc.parametrize("zoo_entry", list(entries.values()), ids=list(entries))


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--benchmark"):
        skip = pytest.mark.skip(reason="heavy benchmark suite: run with --benchmark")
        for item in items:
            if "heavy" in item.keywords:
                item.add_marker(skip)
    elif config.getoption("--quick"):
        skip = pytest.mark.skip(reason="--quick: this perf suite takes minutes; run without --quick")
        for item in items:
            if "perf" in item.keywords:
                item.add_marker(skip)
    # The compare against the reference's revision (last) ends the session: its verdict is the
    # session's last word, printed after everything else. Stable otherwise.
    items.sort(key=lambda i: 1 if "last" in i.keywords else 0)


def _device(config) -> str:
    import torch

    from i3dbench.evaluate import check_device

    return check_device(config.getoption("--device") or ("cuda" if torch.cuda.is_available() else "cpu"))


@pytest.fixture(scope="session")
def device(pytestconfig) -> str:
    return _device(pytestconfig)


@pytest.fixture(scope="session")
def quick(pytestconfig) -> bool:
    return bool(pytestconfig.getoption("--quick"))


@pytest.fixture(scope="session")
def run_dir(pytestconfig):
    """The session's run folder (``runs.RunDir``): ``--out`` or a new one, opened on first use."""
    from i3dbench.runs import open_run_dir

    state = pytestconfig.stash[_STATE]
    if state.run is None:
        state.run = open_run_dir(pytestconfig.getoption("--out"))
        if not state.run.env_file.exists():  # the environment the run saw, as `i3dbench run` records it
            from i3dbench.fileio import atomic_write
            from i3dbench.provenance import environment_report

            atomic_write(state.run.env_file, environment_report())
    return state.run


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """Each test starts with the process's torch thread count: a measurement that leaks another
    count (a bug; test_bench checks for it) must not change the conditions of every later one."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    state = config.stash.get(_STATE, None)
    if state is None or state.run is None or hasattr(config, "workerinput"):
        return
    if not any(state.run.records.glob("*.json")):
        return
    from i3dbench.report import render_report

    try:
        res = render_report(state.run.records, state.run.report, zoo=config.getoption("--zoo"))
        state.report_path = Path(res.out_dir) / "README.md"
    except Exception:  # noqa: BLE001 - not swallowed: shown in the summary, and the session fails
        state.report_error = traceback.format_exc()
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    # pytest_sessionfinish runs before the summary: say where everything is.
    state = config.stash.get(_STATE, None)
    if state is None or state.run is None:
        return
    n = len(list(state.run.records.glob("*.json"))) if state.run.records.is_dir() else 0
    terminalreporter.write_sep("-", "i3dbench")
    terminalreporter.write_line(f"run folder: {state.run.path} ({n} records)")
    if state.report_path is not None:
        terminalreporter.write_line(f"report: {state.report_path}")
    if state.report_error is not None:
        terminalreporter.write_line("REPORT FAILED to render from the run's records (the session fails):", red=True)
        terminalreporter.write_line(state.report_error)

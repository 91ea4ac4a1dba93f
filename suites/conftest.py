"""The benchmark suites users run: ``pytest suites/ --benchmark [--zoo FILE] [--only NAMES] [--device D]``.

Options (ours; ``--benchmark`` is not a pytest-benchmark flag):
  --benchmark      turn on the heavy suite (accuracy, throughput, memory); without it only
                   the fast checks run (manifest valid, every model builds)
  --zoo FILE       manifest whose entries parametrise the tests (default: K400 zoo + smoke zoo)
  --only NAMES     comma-separated entry names or shell patterns
  --device D       cpu | cuda | cuda:N (default: cuda when available)
  --records-dir D  where records go (default results/records); --results-dir D (default results)
  --no-report      do not render the tables at the end

Tests that take a zoo entry ask for the ``zoo_entry`` fixture and are parametrised by
entry name (``test_accuracy[smoke_i3d_tiny_video]``). Heavy tests carry the ``heavy`` marker.
When the session wrote records, it ends by rendering results/ (``i3dbench report``).
"""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_addoption(parser):
    g = parser.getgroup("i3dbench", "i3dbench benchmark suites")
    g.addoption("--benchmark", action="store_true", default=False,
                help="run the heavy benchmark suite (accuracy, throughput, memory); default: fast checks only")
    g.addoption("--zoo", default=None, help="zoo manifest (default: K400 zoo + smoke zoo)")
    g.addoption("--only", default=None, help="comma-separated entry names or shell patterns")
    g.addoption("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when available)")
    g.addoption("--records-dir", default="results/records", help="records folder (default results/records)")
    g.addoption("--results-dir", default="results", help="rendered tables folder (default results)")
    g.addoption("--no-report", action="store_true", default=False, help="do not render results/ at the end")


def pytest_configure(config):
    config.addinivalue_line("markers", "heavy: part of the heavy benchmark suite (needs --benchmark)")
    config.stash[_WRITTEN] = []


_WRITTEN = pytest.StashKey[list]()


def _entries(config) -> dict:
    from i3dbench.runner import select_entries
    from i3dbench.zoo import load_zoo, load_zoos

    zoo = config.getoption("--zoo")
    return select_entries(load_zoo(zoo) if zoo else load_zoos(), config.getoption("--only"))


def pytest_generate_tests(metafunc):
    if "zoo_entry" in metafunc.fixturenames:
        entries = _entries(metafunc.config)
        metafunc.parametrize("zoo_entry", list(entries.values()), ids=list(entries))


def pytest_collection_modifyitems(config, items):
    if config.getoption("--benchmark"):
        return
    skip = pytest.mark.skip(reason="heavy benchmark suite: run with --benchmark")
    for item in items:
        if "heavy" in item.keywords:
            item.add_marker(skip)


def pytest_benchmark_update_machine_info(config, machine_info):
    """pytest-benchmark hook: name the GPU (and the device the suite ran on) in machine_info."""
    import torch

    machine_info["i3dbench_device"] = _device(config)
    machine_info["torch"] = torch.__version__
    if torch.cuda.is_available():
        machine_info["gpu"] = torch.cuda.get_device_name(0)
        machine_info["cuda"] = torch.version.cuda
        machine_info["cudnn"] = torch.backends.cudnn.version()


def _device(config) -> str:
    import torch

    return config.getoption("--device") or ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.fixture(scope="session")
def device(pytestconfig) -> str:
    return _device(pytestconfig)


@pytest.fixture(scope="session")
def records_dir(pytestconfig) -> Path:
    return Path(pytestconfig.getoption("--records-dir"))


@pytest.fixture(scope="session")
def written_records(pytestconfig) -> list:
    """Append the path of every record a test writes: the session renders the tables if any."""
    return pytestconfig.stash[_WRITTEN]


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    written = config.stash.get(_WRITTEN, [])
    if not written or config.getoption("--no-report") or hasattr(config, "workerinput"):
        return
    from i3dbench.report import render_report
    from i3dbench.zoo import load_zoo, load_zoos

    # One table row per entry of the usual zoos; a custom manifest with other entries is used as is.
    zoo = config.getoption("--zoo")
    if zoo and not set(load_zoo(zoo)) <= set(load_zoos()):
        chosen = zoo
    else:
        chosen = None
    res = render_report(config.getoption("--records-dir"), config.getoption("--results-dir"), zoo=chosen)
    config.stash[_REPORT] = res.out_dir / "README.md"


_REPORT = pytest.StashKey[Path]()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    # pytest_sessionfinish runs before the summary: say where the tables are.
    path = config.stash.get(_REPORT, None)
    if path is not None:
        n = len(config.stash.get(_WRITTEN, []))
        terminalreporter.write_line(f"i3dbench: {n} records written; tables rendered in {path}")

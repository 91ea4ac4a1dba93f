"""Shared test setup: no test writes into the checkout's runs/ folder."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _runs_root_in_tmp(tmp_path_factory, monkeypatch):
    # evaluate() searches the runs root for interrupted runs and `run`/`eval` create run
    # folders there: point it at a per-test temporary folder.
    monkeypatch.setenv("I3DBENCH_RUNS", str(tmp_path_factory.mktemp("runs")))

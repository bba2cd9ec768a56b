"""Keeps the atheris harness working: its target over the recorded wire bytes, and a short
real libFuzzer run when atheris is installed (it is not part of the test extra)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz.fuzz_wire import BytesProvider
from tests.fuzz.fuzz_wire import test_one_input as fuzz_target

HARNESS = Path(__file__).resolve().parent / "fuzz_wire.py"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.mark.parametrize("fixture", sorted(p.name for p in FIXTURES.iterdir()))
@pytest.mark.parametrize("selector", [b"\x00\x01\x00\x00\x00\x00\x10", b"\x02\x00\x00\x01\x00\x01\x00\x00\x08"])
def test_the_harness_target_accepts_the_recorded_wire_bytes(fixture, selector):
    data = selector + (FIXTURES / fixture).read_bytes()
    fuzz_target(data, BytesProvider(data))


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris is not installed")
def test_a_short_libfuzzer_run_finds_nothing(tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(FIXTURES, corpus)  # libFuzzer adds new inputs to the corpus directory
    result = subprocess.run(
        [sys.executable, str(HARNESS), "-runs=3000", "-seed=7", "-max_len=4096", str(corpus)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Done 3000 runs" in result.stderr

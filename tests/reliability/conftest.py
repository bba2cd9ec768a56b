"""Hypothesis profiles for the reliability suite.

``ci`` (the default) keeps every property test to a few seconds so the whole suite fits
CI's budget on 2 cores; ``nightly`` runs >= 10,000 examples per property:

    HYPOTHESIS_PROFILE=nightly .venv/bin/pytest tests/reliability -k fuzz

Loading a profile changes Hypothesis' defaults for the whole session; tests elsewhere that
pin ``max_examples`` with their own ``@settings`` keep their numbers.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

# Loopback servers and the decoders make single examples slow now and then on a loaded CI
# machine: no deadline, and no "too slow" or "too large" health checks (our inputs are
# deliberately big and nested).
_RELAXED = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=_RELAXED)
settings.register_profile("dev", max_examples=500, deadline=None, suppress_health_check=_RELAXED)
settings.register_profile(
    "nightly", max_examples=10_000, deadline=None, suppress_health_check=_RELAXED, print_blob=True
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "heavy: moves 100 MB or makes thousands of requests; runs in CI (kept to seconds), "
        "deselect with -m 'not heavy' for a quick local loop",
    )

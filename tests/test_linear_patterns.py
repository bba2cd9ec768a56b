"""No pattern run on client text may take more than linear time (issue 11, items 5 and 6).

On 154468c the PII e-mail pattern took ~7.5 s on 64 KiB of ``"a."`` and the always-on secret
scrubber's JWT pattern was quadratic on ``"-eyJ" * N``. The property: for inputs made of a
repeated unit (the shape every known ReDoS input has: a run a greedy part swallows before
failing, at every start position), 16 times more text costs at most 64 times more CPU (linear:
~16x; quadratic: ~256x). CPU time of this thread, best of three, so other processes on a busy
machine do not count; sizes small enough that the test stays quick. Figures at 64 KiB:
``python -m benchmarks.redos`` (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from benchmarks.redos import WORST_UNITS, cpu_seconds, patterns, worst_input

SMALL, LARGE = 1024, 16 * 1024
MAX_GROWTH = 64  # linear is ~16 (LARGE / SMALL), quadratic ~256
NOISE_FLOOR_S = 0.002  # below this at LARGE, nothing is worth a ratio (timer and cache noise)
PATTERNS = patterns()

units = st.sampled_from(WORST_UNITS) | st.text(alphabet="a1.-@:+( )\\\"eyJ_=&éAB", min_size=1, max_size=5)


def growth(run, unit: str) -> float | None:
    large = cpu_seconds(run, worst_input(unit, LARGE), repeat=2)
    if large < NOISE_FLOOR_S:
        return None
    small = cpu_seconds(run, worst_input(unit, SMALL), repeat=3)
    large = min(large, cpu_seconds(run, worst_input(unit, LARGE), repeat=1))
    return large / max(small, 1e-6)


@pytest.mark.parametrize("name", sorted(PATTERNS))
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(unit=units)
@example(unit="a.")  # the e-mail pattern's quadratic input on 154468c
@example(unit="-eyJ")  # the JWT pattern's
@example(unit="sk-a")
@example(unit="11.")
def test_no_pattern_grows_faster_than_linear(name, unit):
    ratio = growth(PATTERNS[name], unit)
    assert ratio is None or ratio < MAX_GROWTH, f"{name} on {unit!r}: {ratio:.0f}x for {LARGE // SMALL}x the text"


def test_the_property_catches_the_quadratic_patterns_of_154468c():
    """The check above can fail: main@154468c's e-mail and JWT patterns break it."""
    from benchmarks.redos import before_patterns

    before = before_patterns()
    assert growth(before["before: PII e-mail (154468c)"], "a.") > MAX_GROWTH
    assert growth(before["before: secret scrubber (154468c)"], "-eyJ") > MAX_GROWTH

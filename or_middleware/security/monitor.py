"""SecurityMonitor: reads each finished GenAI span (and its prompt) once and says what looks wrong.

Runs on the analysis thread, never on the request path. Its state (per-route prompt
lengths, per-user windows and cost baselines) lives in this process only and is bounded:
the least recently seen users and routes are forgotten first.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from or_middleware import spans as contract
from or_middleware.keys import bounded_key
from or_middleware.prompts import PromptFields, caller_turn_texts, prompt_chars
from or_middleware.security.injection import find_injection
from or_middleware.security.windows import BoundedMap, DistinctInWindow, RollingMedian, WindowCount

if TYPE_CHECKING:
    from or_middleware.config import SecuritySettings

PROMPT_LENGTH = "prompt_length"
BURST = "burst"
MODEL_SWITCHING = "model_switching"
COST_SPIKE = "cost_spike"
PROMPT_INJECTION = "prompt_injection"
SIGNAL_KINDS = (PROMPT_LENGTH, BURST, MODEL_SWITCHING, COST_SPIKE, PROMPT_INJECTION)

_NO_ROUTE = "(none)"
_MAX_LISTED_MODELS = 10

Evidence = dict[str, Any]  # attribute values: str, int, float, list[str]


@dataclass(frozen=True)
class SecuritySignal:
    kind: str
    evidence: Evidence
    excerpt: str | None = None  # matched prompt text: content, dropped for privacy-mode destinations


@dataclass
class _UserState:
    calls: WindowCount
    models: DistinctInWindow
    costs: RollingMedian
    burst_flagged: bool = False
    switching_flagged: bool = False


@dataclass
class SecurityMonitor:
    settings: SecuritySettings
    capture_content: bool = False  # keep matched excerpts (some destination may see content)
    counts: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        capacity = self.settings.max_tracked
        self._users: BoundedMap[str, _UserState] = BoundedMap(capacity)
        self._routes: BoundedMap[str, RollingMedian] = BoundedMap(capacity)

    def inspect(self, span: ReadableSpan, prompt: PromptFields | None) -> list[SecuritySignal]:
        attributes = span.attributes or {}
        at = (span.start_time or 0) / 1e9
        signals: list[SecuritySignal] = []
        if prompt is not None:
            route = bounded_key(str(attributes.get(contract.TRACE_NAME) or _NO_ROUTE))
            self._check_prompt_length(route, prompt_chars(prompt), signals)
            if self.settings.injection:
                self._check_injection(prompt, signals)
        user = attributes.get(contract.USER_ID)
        if isinstance(user, str) and user:
            state = self._users.get(bounded_key(user), self._new_user)
            self._check_burst(state, at, signals)
            model = attributes.get(gen_ai.GEN_AI_REQUEST_MODEL)
            if isinstance(model, str):
                self._check_models(state, at, bounded_key(model), signals)
            cost = attributes.get(contract.USAGE_COST)
            if isinstance(cost, int | float):
                self._check_cost(state, float(cost), signals)
        for signal in signals:
            self.counts[signal.kind] += 1
        return signals

    def _new_user(self) -> _UserState:
        s = self.settings
        return _UserState(
            # counted only up to one past each threshold: memory does not grow with a user's rate
            calls=WindowCount(s.burst_window_s, s.burst_requests + 1),
            models=DistinctInWindow(s.model_switch_window_s, max(s.model_switch_models + 1, _MAX_LISTED_MODELS)),
            costs=RollingMedian(s.cost_spike_window),
        )

    def _check_prompt_length(self, route: str, chars: int, signals: list[SecuritySignal]) -> None:
        s = self.settings
        baseline = self._routes.get(route, lambda: RollingMedian(s.prompt_length_window))
        median = baseline.median()
        if (
            median is not None
            and len(baseline) >= s.prompt_length_min_samples
            and chars >= s.prompt_length_min_chars
            and chars > s.prompt_length_factor * max(median, 1.0)
        ):
            signals.append(
                SecuritySignal(
                    PROMPT_LENGTH,
                    {
                        "route": route,
                        "prompt_chars": chars,
                        "baseline_chars": round(median, 1),
                        "ratio": round(chars / max(median, 1.0), 2),
                    },
                )
            )
        baseline.add(chars)

    def _check_injection(self, prompt: PromptFields, signals: list[SecuritySignal]) -> None:
        match = find_injection(caller_turn_texts(prompt))
        if match is not None:
            excerpt = match.excerpt if self.capture_content else None
            signals.append(SecuritySignal(PROMPT_INJECTION, {"phrase": match.phrase}, excerpt))

    def _check_burst(self, state: _UserState, at: float, signals: list[SecuritySignal]) -> None:
        s = self.settings
        calls = state.calls.add(at)
        if calls <= s.burst_requests:
            state.burst_flagged = False
        elif not state.burst_flagged:  # once per burst, not once per call of it
            state.burst_flagged = True
            signals.append(SecuritySignal(BURST, {"requests": calls, "window_s": s.burst_window_s}))

    def _check_models(self, state: _UserState, at: float, model: str, signals: list[SecuritySignal]) -> None:
        s = self.settings
        models = sorted(state.models.add(at, model))
        if len(models) <= s.model_switch_models:
            state.switching_flagged = False
        elif not state.switching_flagged:
            state.switching_flagged = True
            evidence: Evidence = {
                "distinct_models": len(models),
                "window_s": s.model_switch_window_s,
                "models": models[:_MAX_LISTED_MODELS],
            }
            signals.append(SecuritySignal(MODEL_SWITCHING, evidence))

    def _check_cost(self, state: _UserState, cost: float, signals: list[SecuritySignal]) -> None:
        s = self.settings
        median = state.costs.median()
        if (
            median is not None
            and len(state.costs) >= s.cost_spike_min_samples
            and cost >= s.cost_spike_min_usd
            and cost > s.cost_spike_factor * median
        ):
            ratio = round(cost / median, 2) if median > 0 else None
            evidence: Evidence = {"cost_usd": cost, "baseline_usd": median}
            if ratio is not None:
                evidence["ratio"] = ratio
            signals.append(SecuritySignal(COST_SPIKE, evidence))
        state.costs.add(cost)

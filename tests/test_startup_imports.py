"""Start-up imports only what the configuration needs (issue 15, memory and start-up).

Each check runs in a fresh interpreter (``sys.modules`` of this test process holds everything
the suite ever imported): import ``or_middleware``, build the middleware, list the modules.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.real_servers import REPO_ROOT

# Libraries the default configuration (the local SQLite store, privacy on) has no use for.
NOT_FOR_THE_DEFAULT = (
    "grpc",  # OTLP/gRPC destinations only
    "google.protobuf",  # OTLP encoders (remote destinations) only
    "opentelemetry.proto",
    "httpx",  # httpx v1: the remote destinations' transport is httpcore; the app's httpx is patched on import
    "httpcore",
    "requests",  # patched when the app imports it, never imported by us
    "aiohttp",
    "rich",
    "phonenumbers",  # REDACT_PII only
    "jinja2",  # the UI only
    "starlette.templating",
    "genai_prices.data",  # the price table: loaded by the first call that needs a price
    "opentelemetry.sdk.metrics",  # a destination that takes metrics only
    "or_middleware.ui",
    "or_middleware.report",
    "or_middleware.export.encoders",
    "or_middleware.export.http_transport",
    "or_middleware.export.grpc_transport",
    "or_middleware.export.vendors",  # the vendors' presets: imported when one is named
    "or_middleware.export.webhook",
)

BUILD = """
import json, sys
import or_middleware
from or_middleware import LLMTracingMiddleware

async def app(scope, receive, send):
    pass

middleware = LLMTracingMiddleware(app{settings})
refusal = getattr(middleware, "_refusal", None)
print(json.dumps({{"modules": sorted(sys.modules), "refusal": refusal and refusal.message}}))
"""


def _build(tmp_path: Path, env: dict[str, str] | None = None, settings: str = "",
           block: tuple[str, ...] = ()) -> dict[str, object]:
    """Build the middleware in a fresh interpreter; ``block`` makes those packages unimportable."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OR_MIDDLEWARE_", "OTEL_"))}
    clean.update(env or {})
    clean["PYTHONPATH"] = str(REPO_ROOT)
    clean["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    prelude = "".join(f"import sys; sys.modules[{name!r}] = None\n" for name in block)
    done = subprocess.run([sys.executable, "-c", prelude + BUILD.format(settings=settings)], cwd=tmp_path, env=clean,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _loaded(modules: object, name: str) -> bool:
    assert isinstance(modules, list)
    return any(m == name or m.startswith(name + ".") for m in modules)


def test_the_default_configuration_imports_no_library_it_does_not_use(tmp_path: Path) -> None:
    result = _build(tmp_path)
    assert result["refusal"] is None
    loaded = [name for name in NOT_FOR_THE_DEFAULT if _loaded(result["modules"], name)]
    assert loaded == []
    assert _loaded(result["modules"], "or_middleware.store.sqlite_writer")  # the default destination is built


def test_an_otlp_http_destination_imports_its_transport_and_encoder_but_not_grpc(tmp_path: Path) -> None:
    result = _build(tmp_path, {"OR_MIDDLEWARE_DESTINATIONS": "otlp",
                               "OR_MIDDLEWARE_OTLP__ENDPOINT": "http://127.0.0.1:9/v1/traces"})
    assert result["refusal"] is None
    modules = result["modules"]
    assert _loaded(modules, "or_middleware.export.http_transport")
    assert _loaded(modules, "or_middleware.export.encoders")
    assert _loaded(modules, "opentelemetry.sdk.metrics")  # otlp takes metrics
    assert not _loaded(modules, "grpc")
    assert not _loaded(modules, "httpx")  # the transport runs on httpcore alone


def test_a_grpc_destination_imports_grpc_at_start_up(tmp_path: Path) -> None:
    result = _build(tmp_path, {"OR_MIDDLEWARE_DESTINATIONS": "otlp", "OR_MIDDLEWARE_OTLP__PROTOCOL": "grpc",
                               "OR_MIDDLEWARE_OTLP__ENDPOINT": "http://127.0.0.1:9"})
    assert result["refusal"] is None
    assert _loaded(result["modules"], "grpc")  # at start-up, never first on an exporter thread


def test_a_grpc_destination_without_grpcio_stops_start_up_with_one_line(tmp_path: Path) -> None:
    result = _build(tmp_path, {"OR_MIDDLEWARE_DESTINATIONS": "otlp", "OR_MIDDLEWARE_OTLP__PROTOCOL": "grpc",
                               "OR_MIDDLEWARE_OTLP__ENDPOINT": "http://127.0.0.1:9"}, block=("grpc",))
    message = str(result["refusal"])
    assert "grpc needs the grpcio package" in message and "\n" not in message


@pytest.mark.parametrize("client", ["requests", "httpx"])
def test_a_client_imported_after_the_middleware_is_still_traced(tmp_path: Path, client: str) -> None:
    script = f"""
import sys
from or_middleware import LLMTracingMiddleware
from or_middleware.config import Settings
LLMTracingMiddleware(lambda *a: None, settings=Settings(destinations=["console"]))
assert {client!r} not in sys.modules
import {client}
from or_middleware.capture import hook, requests_hook
if {client!r} == "requests":
    assert requests_hook._original_send is not None
else:
    assert getattr({client}.HTTPTransport.handle_request, "__or_middleware_original__", None) is not None
print("patched")
"""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OR_MIDDLEWARE_", "OTEL_"))}
    clean["PYTHONPATH"] = str(REPO_ROOT)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=clean, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("patched")


def test_pii_redaction_loads_phonenumbers_at_start_up_and_refuses_an_unknown_region(tmp_path: Path) -> None:
    redacting = {"OR_MIDDLEWARE_PRIVACY_MODE": "false", "OR_MIDDLEWARE_REDACT_PII": "true"}
    result = _build(tmp_path, {**redacting, "OR_MIDDLEWARE_PII_PHONE_REGION": "gb"})  # lower case: taken as GB
    assert result["refusal"] is None
    assert _loaded(result["modules"], "phonenumbers")  # at start-up, not on the first span
    result = _build(tmp_path, {**redacting, "OR_MIDDLEWARE_PII_PHONE_REGION": "XX"})
    message = str(result["refusal"])
    assert "OR_MIDDLEWARE_PII_PHONE_REGION='XX'" in message and "\n" not in message


def test_a_malformed_phone_region_is_refused_without_loading_phonenumbers(tmp_path: Path) -> None:
    result = _build(tmp_path, {"OR_MIDDLEWARE_PII_PHONE_REGION": "GBR"})
    assert "OR_MIDDLEWARE_PII_PHONE_REGION='GBR'" in str(result["refusal"])
    assert not _loaded(result["modules"], "phonenumbers")


def test_the_lazily_imported_presets_are_the_ones_their_modules_register() -> None:
    import importlib

    from or_middleware.config import LAZY_PRESETS, PRESETS

    for module in set(LAZY_PRESETS.values()):
        importlib.import_module(module)
    registered = {kind for kind, cls in PRESETS.items() if cls.__module__ in set(LAZY_PRESETS.values())}
    assert registered == set(LAZY_PRESETS)


def test_a_vendor_destination_is_imported_and_checked_at_start_up(tmp_path: Path) -> None:
    result = _build(tmp_path, {"OR_MIDDLEWARE_DESTINATIONS": "datadog", "OR_MIDDLEWARE_DATADOG__API_KEY": "k"})
    assert result["refusal"] is None and _loaded(result["modules"], "or_middleware.export.vendors")
    result = _build(tmp_path, {"OR_MIDDLEWARE_DESTINATIONS": "local", "OR_MIDDLEWARE_SENTRY__DSNN": "x"})
    assert "OR_MIDDLEWARE_SENTRY__DSNN names no setting; did you mean OR_MIDDLEWARE_SENTRY__DSN?" in str(
        result["refusal"])
    result = _build(tmp_path, {"OR_MIDDLEWARE_DESTINATIONS": "datadgo"})
    assert "unknown destination 'datadgo'" in str(result["refusal"]) and "datadog" in str(result["refusal"])

"""Destinations configured alike prepare each span once; differently configured ones never share."""

from __future__ import annotations

import json

import httpx

import or_middleware
from or_middleware import LLMTracingMiddleware
from or_middleware.demo.serving import serve_asgi
from or_middleware.export import preparation
from or_middleware.runtime import live_runtimes
from tests.apps import chat_body, fastapi_app
from tests.conftest import make_settings, otlp
from tests.support.otlp_receiver import OTLPReceiver

CANARY = "canary-7f3e-prompt-text"


def test_two_privacy_destinations_share_one_preparation_and_a_content_one_keeps_its_own(
        upstream, receiver, content_receiver, monkeypatch):
    prepared: list[int] = []
    real = preparation.run_transforms

    def counting(transforms, span):
        prepared.append(id(transforms))
        return real(transforms, span)

    monkeypatch.setattr(preparation, "run_transforms", counting)
    with OTLPReceiver() as backup:
        settings = make_settings(upstream, otlp(receiver, spans="all"), otlp(backup, name="otlp_backup", spans="all"),
                                 otlp(content_receiver, name="otlp_content", spans="all", privacy_mode=False))
        app = fastapi_app(upstream.openrouter)
        app.add_middleware(LLMTracingMiddleware, settings=settings)
        with serve_asgi(app) as url, httpx.Client(base_url=url, timeout=30) as client:
            for n in range(3):
                client.post("/ask", json=chat_body(f"{CANARY} {n}")).raise_for_status()
        private, twin, content = live_runtimes()[-1].pipelines
        assert private.preparation.shared is twin.preparation.shared is not None
        assert private.preparation.shared.consumers == 2
        assert content.preparation.shared is not private.preparation.shared  # alone in its configuration
        assert content.preparation.shared.consumers == 1
        assert or_middleware.force_flush()
        for rx in (receiver, backup, content_receiver):
            rx.wait_for_spans(lambda s: s.scope == "or_middleware", count=3)
            rx.wait_for_spans(lambda s: s.kind == "SERVER", count=3)
        for rx in (receiver, backup):
            assert CANARY not in json.dumps([(s.name, s.attributes, s.events) for s in rx.spans])
        assert CANARY in json.dumps([s.attributes for s in content_receiver.spans])
        shared = private.preparation.shared.transforms
        # 6 spans prepared once for both privacy destinations, 6 for the content one: 12, not 18
        assert prepared.count(id(shared)) == 6 and len(prepared) == 12
        assert not private.preparation.shared._done  # both took every span: nothing is kept
        or_middleware.shutdown_all()  # while the backup receiver still listens

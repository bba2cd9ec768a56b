"""A hostile or messy spool directory (issue 11 items 13 and 18): foreign files are ignored, links
are never followed, and a spool directory that is not private is not used.

Each test runs the real app under uvicorn with a real OTLP receiver; the spool directory is the
one the destination computes for itself.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import or_middleware
from or_middleware import Settings
from or_middleware.config import OtlpDestination
from or_middleware.demo.serving import serve_asgi
from or_middleware.export.destinations import spool_directory, wire_target
from tests.support.capture_receiver import RestartableOTLPReceiver
from tests.test_delivery import ask, destination, genai, make_app

CANARY = b"CANARY-spool-secret-7f3a"


def leaf(dest: OtlpDestination) -> Path:
    settings = Settings(service_name="shop", destinations=[dest])
    return spool_directory(dest, settings, wire_target(dest, settings))


def _all_bytes_received(receiver: RestartableOTLPReceiver) -> bytes:
    return b"".join(r.body for r in receiver.requests)


def test_foreign_files_in_the_spool_are_left_alone_and_do_not_stop_the_app(upstream, tmp_path):
    with RestartableOTLPReceiver() as receiver:
        dest = destination(receiver.traces_url, tmp_path)
        spool = leaf(dest)
        spool.mkdir(parents=True, mode=0o700)
        foreign = {
            ".tmp-editor-backup": b"backup",
            "x.batch.sending-99999999999999999999": b"x",
            "00000000000000000001-99999999999-1.1.batch.sending-99999999999": b"y",
            ".tmp-12-notes": b"z",
            "README": b"mine",
        }
        for name, data in foreign.items():
            (spool / name).write_bytes(data)
        app = make_app(upstream, dest)  # on 154468c: ValueError / OverflowError at start-up
        with serve_asgi(app) as url:
            ask(url, 2)
            receiver.wait_for_spans(genai, count=2)
        assert {p.name: p.read_bytes() for p in spool.iterdir()} == foreign  # untouched


def test_a_planted_link_in_the_spool_is_never_read_or_sent(upstream, tmp_path):
    secret = tmp_path / "outside" / "secret"
    secret.parent.mkdir()
    secret.write_bytes(CANARY)
    receiver = RestartableOTLPReceiver()
    receiver.start()
    dest = destination(receiver.traces_url, tmp_path / "spool", max_retries=0)
    spool = leaf(dest)
    spool.mkdir(parents=True, mode=0o700)
    planted = spool / "00000000000000000001-1-0.1.batch"  # named like a batch, oldest of all
    planted.symlink_to(secret)
    app = make_app(upstream, dest)
    with serve_asgi(app) as url:
        receiver.stop()  # down: our own batches join the spool behind the planted one
        ask(url, 2)
        assert or_middleware.stats()["otlp"]["spooled"] == 2
        receiver.start()
        receiver.wait_for_spans(genai, count=2, timeout=15)  # the spool is re-sent
    receiver.close()
    assert CANARY not in _all_bytes_received(receiver)
    assert planted.is_symlink() and secret.read_bytes() == CANARY
    assert or_middleware.stats()["otlp"]["exported"] == 2


def _one_call_while_down(upstream, dest: OtlpDestination, receiver: RestartableOTLPReceiver) -> None:
    with serve_asgi(make_app(upstream, dest)) as url:
        receiver.stop()
        ask(url, 1)
    receiver.close()


@pytest.mark.parametrize(("unsafe", "why"), [("link", "symbolic link"), ("writable", "others may write to it")])
def test_a_spool_directory_that_is_not_private_is_not_used(upstream, tmp_path, caplog, unsafe, why):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    receiver = RestartableOTLPReceiver()
    receiver.start()
    dest = destination(receiver.traces_url, tmp_path / "spool", max_retries=0)
    spool = leaf(dest)
    spool.parent.mkdir(parents=True)
    if unsafe == "link":
        spool.symlink_to(elsewhere, target_is_directory=True)
    else:
        spool.mkdir()
        spool.chmod(0o777)
    caplog.set_level(logging.WARNING, logger="or_middleware")
    _one_call_while_down(upstream, dest, receiver)
    assert why in caplog.text
    assert list(elsewhere.iterdir()) == [] and list(spool.iterdir()) == []  # nothing written there
    assert or_middleware.stats()["otlp"]["dropped"] == 1


def test_spooled_files_are_private_regular_files(upstream, tmp_path):
    receiver = RestartableOTLPReceiver()
    receiver.start()
    dest = destination(receiver.traces_url, tmp_path / "spool", max_retries=0)
    _one_call_while_down(upstream, dest, receiver)
    spool = leaf(dest)
    assert spool.stat().st_mode & 0o777 == 0o700
    [batch] = list(spool.iterdir())
    assert batch.is_file() and not batch.is_symlink() and batch.stat().st_mode & 0o777 == 0o600

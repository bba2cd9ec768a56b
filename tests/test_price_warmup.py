"""A fork during the price table's background load leaves the child able to price (issue 15).

``gunicorn --preload`` builds the app (which starts loading the price table on a thread) and forks
its workers at once. The fork is made to land inside that import, deterministically: the table's
module is loaded through a finder that signals when the import has begun and then stalls it.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.real_servers import REPO_ROOT

SCRIPT = """
import importlib.abc, importlib.util, os, sys, threading, time

importing = threading.Event()

class Stall(importlib.abc.MetaPathFinder):
    # the table's import signals that it began, then takes a while (as on a loaded machine)
    def find_spec(self, name, path, target=None):
        if name != "genai_prices.data":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module
        def exec_module(module):
            importing.set()
            time.sleep(1.0)
            run(module)
        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, Stall())
import or_middleware.price_warmup as warmup
warmup.FORK_WAIT_S = {wait}
warmup.warm_up()
assert importing.wait(60)
pid = os.fork()
if pid == 0:
    from or_middleware.genai.cost import _snapshot
    try:
        print("child priced:", len(_snapshot().providers) > 0, flush=True)
    except Exception as exc:
        print("child failed:", type(exc).__name__, exc, flush=True)
    os._exit(0)
os.waitpid(pid, 0)
"""


@pytest.mark.parametrize("wait", [10.0, 0.0], ids=["fork-waits-for-the-load", "fork-cuts-the-load"])
def test_a_worker_forked_during_the_price_table_load_can_price(tmp_path, wait: float) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OR_MIDDLEWARE_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    done = subprocess.run([sys.executable, "-c", SCRIPT.format(wait=wait)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert "child priced: True" in done.stdout, done.stdout + done.stderr[-2000:]

"""DiskSpool: encoded batches a destination could not take yet, on disk, oldest first, bounded.

One file per batch, named ``<time_ns>-<pid>-<seq>.<spans>.batch`` so that name order is
arrival order and the span count is known without reading. Files are written to a temporary
name and renamed (a crash leaves no half batch), readable by the owner only. Several
processes (web workers) may share a directory: a batch is claimed by renaming it to
``...batch.sending-<pid>`` before it is sent, so no two processes send the same batch, and
a claim left by a process that died is released at start-up.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

_SUFFIX = ".batch"
_NAME = re.compile(r"^\d{20}-\d+-\d+\.(\d+)\.batch$")
_CLAIMED = re.compile(r"^(?P<name>.+\.batch)\.sending-(?P<pid>\d+)$")


@dataclass(frozen=True)
class SpooledBatch:
    path: Path  # the claimed file
    name: str  # its name in the queue
    spans: int
    size: int
    body: bytes


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DiskSpool:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._seq = itertools.count()
        self._names: deque[str] = deque()
        self.pending_bytes = 0
        self.pending_spans = 0
        if directory.is_dir():  # created on the first put: a healthy destination leaves no trace on disk
            self._release_abandoned_claims()
            self._rescan()

    # -- state ------------------------------------------------------------------------------

    def _release_abandoned_claims(self) -> None:
        for entry in self._entries():
            match = _CLAIMED.match(entry.name)
            if match and not _pid_alive(int(match["pid"])):
                with contextlib.suppress(OSError):
                    os.replace(entry.path, self.directory / match["name"])
            elif entry.name.startswith(".tmp-") and not _pid_alive(int(entry.name.split("-")[1])):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)

    def _entries(self) -> list[os.DirEntry[str]]:
        try:
            return list(os.scandir(self.directory))
        except FileNotFoundError:
            return []

    def _rescan(self) -> None:
        names, size, spans = [], 0, 0
        for entry in self._entries():
            match = _NAME.match(entry.name)
            if match:
                with contextlib.suppress(OSError):
                    size += entry.stat().st_size
                    spans += int(match[1])
                    names.append(entry.name)
        names.sort()
        self._names = deque(names)
        self.pending_bytes, self.pending_spans = size, spans

    @property
    def is_empty(self) -> bool:
        if not self._names:
            self._rescan()  # another process may have spooled meanwhile
        return not self._names

    # -- writing ----------------------------------------------------------------------------

    def put(self, body: bytes, spans: int) -> bool:
        """Keep a batch; False (nothing written) when it would exceed the bound or the disk fails."""
        if self.pending_bytes + len(body) > self.max_bytes:
            self._rescan()  # others may have drained it
            if self.pending_bytes + len(body) > self.max_bytes:
                return False
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(self._seq)}.{spans}{_SUFFIX}"
        temporary = self.directory / f".tmp-{os.getpid()}-{name}"
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as file:
                file.write(body)
            os.replace(temporary, self.directory / name)
        except OSError:
            logger.warning("or_middleware: cannot write to spool %s", self.directory, exc_info=True)
            with contextlib.suppress(OSError):
                temporary.unlink()
            return False
        self._names.append(name)
        self.pending_bytes += len(body)
        self.pending_spans += spans
        return True

    # -- reading ----------------------------------------------------------------------------

    def claim_oldest(self) -> SpooledBatch | None:
        """The oldest batch, claimed for sending; ``done`` or ``release`` it afterwards."""
        if not self._names:
            self._rescan()
        while self._names:
            name = self._names.popleft()
            claimed = self.directory / f"{name}.sending-{os.getpid()}"
            try:
                os.replace(self.directory / name, claimed)
                body = claimed.read_bytes()
            except FileNotFoundError:
                continue  # another process took it
            match = _NAME.match(name)
            return SpooledBatch(claimed, name, int(match[1]) if match else 0, len(body), body)
        return None

    def done(self, batch: SpooledBatch) -> None:
        """Delivered (or refused for good): the batch leaves the spool."""
        with contextlib.suppress(FileNotFoundError):
            batch.path.unlink()
        self.pending_bytes = max(0, self.pending_bytes - batch.size)
        self.pending_spans = max(0, self.pending_spans - batch.spans)

    def release(self, batch: SpooledBatch) -> None:
        """Not delivered this time: back to the head of the queue."""
        with contextlib.suppress(FileNotFoundError):
            os.replace(batch.path, self.directory / batch.name)
            self._names.appendleft(batch.name)

"""DiskSpool: encoded batches a destination could not take yet, on disk, oldest first, bounded.

One file per batch, named ``<time_ns>-<pid>-<seq>.<spans>.batch`` so that name order is
arrival order and the span count is known without reading. Files are written to a temporary
name and renamed (a crash leaves no half batch), readable by the owner only. Several
processes (web workers) may share a directory: a batch is claimed by renaming it to
``...batch.sending-<pid>`` before it is sent, so no two processes send the same batch, and
a claim left by a process that died is released at start-up.

The directory is private: it must be a real directory (not a link) owned by this user and
writable by nobody else, or the destination gets no spool (a warning says why). Links are
never followed: files are created with ``O_EXCL | O_NOFOLLOW`` (0600) and opened with
``O_NOFOLLOW``, and only regular files named as we name them are ever read, renamed or
deleted: anything else in the directory (an editor's backup, a planted link) is ignored.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import stat
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

_SUFFIX = ".batch"
_BATCH = r"\d{20}-\d{1,10}-\d{1,20}\.(?P<spans>\d{1,9})\.batch"
_NAME = re.compile(rf"^{_BATCH}$")
_CLAIMED = re.compile(rf"^(?P<name>{_BATCH})\.sending-(?P<pid>\d{{1,10}})$")
_TEMPORARY = re.compile(rf"^\.tmp-(?P<pid>\d{{1,10}})-{_BATCH}$")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


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
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


def private_directory_problem(directory: Path) -> str | None:
    """Why ``directory`` may not hold a spool (None: fine, or not there yet)."""
    try:
        info = os.lstat(directory)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(info.st_mode):
        return "it is a symbolic link (the spool never follows links)"
    if not stat.S_ISDIR(info.st_mode):
        return "it is not a directory"
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        return "it belongs to another user"
    if info.st_mode & 0o022:
        return "others may write to it (expected mode 0700)"
    return None


def _read_regular_file(path: Path, limit: int) -> bytes:
    """The file's bytes, never through a link and never more than ``limit``."""
    fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IsADirectoryError(f"{path} is not a regular file")
        return file.read(limit + 1)


class DiskSpool:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._seq = itertools.count()
        self._names: deque[str] = deque()
        self.pending_bytes = 0
        self.pending_spans = 0
        self._refused_size: int | None = None  # size of the last batch that did not fit (see is_full)
        problem = private_directory_problem(directory)
        if problem is not None:
            raise PermissionError(f"{directory}: {problem}")
        if directory.is_dir():  # created on the first put: a healthy destination leaves no trace on disk
            self._release_abandoned_claims()
            self._rescan()

    # -- state ------------------------------------------------------------------------------

    def _release_abandoned_claims(self) -> None:
        for entry in self._entries():
            claimed, temporary = _CLAIMED.match(entry.name), _TEMPORARY.match(entry.name)
            if claimed and not _pid_alive(int(claimed["pid"])):
                with contextlib.suppress(OSError):
                    os.replace(entry.path, self.directory / claimed["name"])
            elif temporary and not _pid_alive(int(temporary["pid"])):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)

    def _entries(self) -> list[os.DirEntry[str]]:
        """Our own regular files; links and anything else are not ours to touch."""
        if private_directory_problem(self.directory) is not None:
            return []
        try:
            with os.scandir(self.directory) as entries:
                return [e for e in entries if e.is_file(follow_symlinks=False)]
        except (FileNotFoundError, NotADirectoryError):
            return []

    def _rescan(self) -> None:
        names, size, spans = [], 0, 0
        for entry in self._entries():
            match = _NAME.match(entry.name)
            if match:
                with contextlib.suppress(OSError):
                    size += entry.stat(follow_symlinks=False).st_size
                    spans += int(match["spans"])
                    names.append(entry.name)
        names.sort()
        self._names = deque(names)
        self.pending_bytes, self.pending_spans = size, spans

    @property
    def is_empty(self) -> bool:
        if not self._names:
            self._rescan()  # another process may have spooled meanwhile
        return not self._names

    def is_full(self) -> bool:
        """The last batch offered did not fit, and no room has been made since (rescanned: another
        process may have drained it): the next one, of a similar size, would not fit either."""
        refused = self._refused_size
        if refused is None or self.pending_bytes + refused <= self.max_bytes:
            return False
        self._rescan()
        return self.pending_bytes + refused > self.max_bytes

    # -- writing ----------------------------------------------------------------------------

    def put(self, body: bytes, spans: int) -> bool:
        """Keep a batch; False (nothing written) when it would exceed the bound or the disk fails."""
        if self.pending_bytes + len(body) > self.max_bytes:
            self._rescan()  # others may have drained it
            if self.pending_bytes + len(body) > self.max_bytes:
                self._refused_size = len(body)
                return False
        self._refused_size = None
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(self._seq)}.{spans}{_SUFFIX}"
        temporary = self.directory / f".tmp-{os.getpid()}-{name}"
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            problem = private_directory_problem(self.directory)
            if problem is not None:
                raise PermissionError(f"{self.directory}: {problem}")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
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
            if private_directory_problem(self.directory) is not None:
                return None
            claimed = self.directory / f"{name}.sending-{os.getpid()}"
            try:
                os.replace(self.directory / name, claimed)
            except FileNotFoundError:
                continue  # another process took it
            try:
                body = _read_regular_file(claimed, self.max_bytes)
            except OSError:  # a link or other non-file put under our name: put back, never read
                with contextlib.suppress(OSError):
                    os.replace(claimed, self.directory / name)
                continue
            match = _NAME.match(name)
            return SpooledBatch(claimed, name, int(match["spans"]) if match else 0, len(body), body)
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

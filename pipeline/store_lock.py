"""The prompt-store lock: `fcntl.flock` on a lock file, re-entrant within one process.

The kernel drops a flock when its process dies, so a SIGKILLed refresh never leaves a
stale lock behind (on local file systems; NFS locking depends on the server). The file
holds the holder's pid, host, purpose and start time, for the message a second process
gets when it finds the lock taken.
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

_HELD: dict[str, int] = {}  # real path of a lock file -> nesting depth in this process


class StoreError(RuntimeError):
    """Anything the store refuses to do; the message says what to do instead."""


class SetLockedError(StoreError):
    """Another process holds the prompt set's lock."""


@contextmanager
def exclusive(path: Path, *, what: str, purpose: str,
              on_acquire: Callable[[], None] = lambda: None) -> Iterator[None]:
    """Hold the lock at `path`; raise SetLockedError at once if another process has it.

    `on_acquire` runs once the lock is freshly taken (not on re-entry), e.g. to remove
    what a dead holder left behind.
    """
    key = os.path.realpath(path)
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    fd = os.open(key, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        holder = Path(key).read_text(errors="replace").strip() or "unknown process"
        os.close(fd)
        raise SetLockedError(
            f"{what} is locked by another refresh or publish ({holder}). Wait for it to "
            f"finish and run again on the version it publishes; nothing was written by "
            f"this run.") from exc
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, {purpose} since "
                  f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC\n".encode(), 0)
    _HELD[key] = 1
    try:
        on_acquire()
        yield
    finally:
        del _HELD[key]
        os.ftruncate(fd, 0)
        os.close(fd)  # closing the descriptor releases the flock

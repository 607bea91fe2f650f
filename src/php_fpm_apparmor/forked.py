"""Work shared with forked copies of this process, for what only reads and is slow per item.

`status` on a host's thousand pools before any hat file exists asks the plugins about every
site (about 1.5 ms a pool, reading wp-config.php and version.php): three quarters of its
time. A fork shares this process's memory (the pools read, the plugins loaded), so each
copy does its share and sends back only its results. Nothing here is needed for
correctness: a share whose copy failed, or could not be started, is done again here, so an
exception is raised exactly as without forking.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys

LEAST = 32  # items per process: a fork costs a few ms, 32 pools' detection ~50 ms


def cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # what this process may use (a systemd CPUAffinity=)
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def map_forked(fn, items, jobs: int | None = None) -> list:
    """[fn(x) for x in items], in order, the items split over up to `jobs` processes (this
    one does the first share). fn's results must pickle."""
    items = list(items)
    n = min(jobs or cpus(), len(items) // LEAST)
    if n <= 1:
        return [fn(x) for x in items]
    size = -(-len(items) // n)
    shares = [items[i:i + size] for i in range(0, len(items), size)]
    flush()  # else a copy's exit could print what this process had buffered
    kids: list = []  # (pid or None, read end or None, share)
    try:
        for share in shares[1:]:
            kids.append(_start(fn, share))
        out = [fn(x) for x in shares[0]]
        while kids:
            pid, fd, share = kids.pop(0)
            got = _collect(pid, fd)
            out += got if got is not None else [fn(x) for x in share]
        return out
    finally:
        for pid, fd, _ in kids:  # this process's share raised: the others' work is not wanted
            if pid is not None:
                os.close(fd)
                try:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                except OSError:  # already reaped (SIGCHLD ignored by whoever started us)
                    pass


def _start(fn, share: list):
    try:
        r, w = os.pipe()
    except OSError:
        return None, None, share
    try:
        pid = os.fork()
    except OSError:  # out of processes or memory: this process does it
        os.close(r)
        os.close(w)
        return None, None, share
    if pid:
        os.close(w)
        return pid, r, share
    # Ctrl-C ends a copy outright: a KeyboardInterrupt raised here could escape os._exit
    # below and run the caller's code on in this copy.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    code = 1
    try:
        os.close(r)
        data = pickle.dumps([fn(x) for x in share], pickle.HIGHEST_PROTOCOL)
        with os.fdopen(w, "wb") as f:
            f.write(data)
        code = 0
    except BaseException:  # noqa: B036 - whatever it was, the parent does this share again
        pass
    finally:
        flush()
        os._exit(code)  # never back into the caller's code (its finally blocks, atexit)


def _collect(pid, fd) -> list | None:
    """A copy's results, or None when it failed (or never started)."""
    if pid is None:
        return None
    with os.fdopen(fd, "rb") as f:
        data = f.read()  # a copy writes only once its whole share is done
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:  # reaped already (SIGCHLD ignored): the bytes tell
        status = 0
    if status != 0 or not data:
        return None
    try:
        return pickle.loads(data)  # our own copy's bytes, through a pipe only it held
    except Exception:  # cut short: this process does the share
        return None


def flush() -> None:
    """Write out what this process's standard streams hold (before an os._exit)."""
    for stream in {id(s): s for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
                   if s is not None}.values():
        try:
            stream.flush()
        except (OSError, ValueError):
            pass

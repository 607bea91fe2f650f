"""A hook's time limit (plugins.Deadline): each implementation gets its whole period, one
timer serves a run's many calls and is off between them, and a forked copy (status shares
detection with copies) has a limit of its own."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

from php_fpm_apparmor import plugins as plugins_mod
from php_fpm_apparmor.api import hookimpl
from php_fpm_apparmor.errors import PluginError

SRC = Path(__file__).resolve().parent.parent / "src"


class Sleeper:
    """detect sleeps for the site's `sleep` seconds."""

    @hookimpl
    def php_fpm_apparmor_detect(site, found):
        time.sleep(site.sleep)
        return []


def _call(loaded, seconds):
    return loaded.call("php_fpm_apparmor_detect", site=SimpleNamespace(sleep=seconds), found=[])


def test_a_hang_after_a_run_of_quick_calls_gets_its_whole_period(monkeypatch):
    """The timer set by the run's first call rings before a later call's period is over:
    that call is given the rest of its own period, not cut at the first call's."""
    monkeypatch.setattr(plugins_mod, "HOOK_SECONDS", 0.6)
    loaded = plugins_mod.load(entry_points=[], extra=[Sleeper], external=False)
    with loaded.session():
        first = time.monotonic()
        while time.monotonic() - first < 0.4:  # the timer was set at the first of these
            _call(loaded, 0.01)
        start = time.monotonic()
        try:
            _call(loaded, 30)
            raise AssertionError("not stopped")
        except PluginError as exc:
            assert "took longer than 0.6 s" in str(exc)
        took = time.monotonic() - start
    assert 0.55 <= took < 2, took  # cut at the first call's period it would be ~0.2 s
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_between_calls_the_timer_is_off(monkeypatch):
    """Quick calls followed by the core's own work (no implementation armed): the timer
    rings at most once more, finds nothing to limit, and stays off: the core's system calls
    are not interrupted over and over."""
    monkeypatch.setattr(plugins_mod, "HOOK_SECONDS", 0.3)
    loaded = plugins_mod.load(entry_points=[], extra=[Sleeper], external=False)
    with loaded.session():
        for _ in range(50):
            _call(loaded, 0)
        assert signal.getitimer(signal.ITIMER_REAL)[0] > 0  # set by the first call, still running
        time.sleep(0.5)  # the core's work, past the period: the timer rang here
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
        _call(loaded, 0)  # and a later call sets it again
        assert signal.getitimer(signal.ITIMER_REAL)[0] > 0
        try:
            _call(loaded, 30)
            raise AssertionError("not stopped")
        except PluginError as exc:
            assert "took longer than 0.3 s" in str(exc)


# Run in a process of its own: without its own timer, the copy would sleep for an hour
# (the parent's timer is not inherited by fork), and the test's time limit catches that.
IN_A_COPY = textwrap.dedent("""
    import os, time
    from types import SimpleNamespace
    from php_fpm_apparmor import forked, plugins as plugins_mod
    from php_fpm_apparmor.api import hookimpl

    class Sleeper:
        @hookimpl
        def php_fpm_apparmor_detect(site, found):
            time.sleep(site.sleep)
            return [os.getpid()]

    plugins_mod.HOOK_SECONDS = 0.5
    loaded = plugins_mod.load(entry_points=[], extra=[Sleeper], external=False)

    def one(sleep):
        try:
            return loaded.call("php_fpm_apparmor_detect", site=SimpleNamespace(sleep=sleep), found=[])[0]
        except ValueError as exc:  # PluginError
            return str(exc)

    with loaded.session():
        one(0)  # this process's timer is set when the copies are forked
        got = forked.map_forked(one, [0] * (2 * forked.LEAST - 1) + [3600], jobs=2)
    print(got[0] == os.getpid(), got[-2] not in (os.getpid(), got[-1]), got[-1])
    """)


def test_a_copy_forked_while_the_timer_runs_has_a_limit_of_its_own():
    out = subprocess.run([sys.executable, "-c", IN_A_COPY], capture_output=True, text=True, timeout=30,
                         env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    here, copy, last = out.stdout.split(" ", 2)
    assert (here, copy) == ("True", "True"), out.stdout  # the last share ran in a copy
    assert "raised PluginTimeout('the call took longer than 0.5 s')" in last, out.stdout

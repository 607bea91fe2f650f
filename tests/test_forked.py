"""Work shared with forked copies (forked.py): the same results, in order, as one process
gives; a copy's failure done again here; no copy left behind; `status` asking the plugins
about a host's pools in several processes and showing what one process shows."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from php_fpm_apparmor import forked, plugins as plugins_mod

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="plugins.d files must be root-owned: run as root")
N = 3 * forked.LEAST + 5  # three shares, the last one short


def _no_children_left() -> bool:
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def test_results_in_order_from_several_processes():
    got = forked.map_forked(lambda x: (x * x, os.getpid()), range(N), jobs=3)
    assert [r for r, _ in got] == [x * x for x in range(N)]
    pids = [p for _, p in got]
    assert pids[0] == os.getpid() and len(set(pids)) == 3  # this process did the first share
    assert _no_children_left()


def test_few_items_stay_in_this_process():
    got = forked.map_forked(lambda x: os.getpid(), range(2 * forked.LEAST - 1), jobs=8)
    assert set(got) == {os.getpid()}


def test_a_copys_failure_is_done_again_here_and_raises_as_without_forking():
    calls = []

    def fn(x):
        calls.append(x)  # in this process only: a copy's list is its own
        if x == N - 1:
            raise KeyError(f"item {x}")
        return x

    with pytest.raises(KeyError, match=f"item {N - 1}"):
        forked.map_forked(fn, range(N), jobs=3)
    assert N - 1 in calls and 0 in calls and N // 2 not in calls  # the middle share came back
    assert _no_children_left()


def test_a_result_that_does_not_pickle_is_made_here():
    got = forked.map_forked(lambda x: (lambda: x), range(N), jobs=2)
    assert [f() for f in got] == list(range(N))


def test_this_processs_failure_stops_and_reaps_the_copies():
    with pytest.raises(ZeroDivisionError):
        forked.map_forked(lambda x: 1 // x if x < forked.LEAST else x, range(N), jobs=3)
    assert _no_children_left()


def test_copies_reaped_by_the_kernel_still_count():
    """Started with SIGCHLD ignored (inherited across exec from a supervisor), exit codes
    cannot be asked: the results are what a copy sent."""
    old = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        got = forked.map_forked(lambda x: (x, os.getpid()), range(N), jobs=3)
    finally:
        signal.signal(signal.SIGCHLD, old)
    assert [x for x, _ in got] == list(range(N)) and len({p for _, p in got}) == 3


PIDAPP = textwrap.dedent("""
    import os
    from php_fpm_apparmor.api import App, hookimpl

    @hookimpl
    def php_fpm_apparmor_detect(site, found):
        if site.pool.name == "web7":
            raise RuntimeError("broken for web7")
        return [App("pidapp", site.roots[0], version=f"1.{os.getpid()}")]
    """)


@needs_root
def test_status_asks_the_plugins_in_several_processes_and_shows_what_one_would(tmp_path, monkeypatch, capsys):
    """Before any hat file exists status asks the plugins about every pool: over the CPUs,
    with the same rows (apps, a broken plugin's problem, order) as in one process."""
    from php_fpm_apparmor import cli
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    import wptree

    root = wptree.build(tmp_path / "root", 2 * forked.LEAST + 6)
    d = root / plugins_mod.LOCAL_DIR.lstrip("/")
    d.mkdir(parents=True)
    (d / "pidapp.py").write_text(PIDAPP)

    def status(jobs: int) -> list:
        monkeypatch.setattr(forked, "cpus", lambda: jobs)
        assert cli.main(["--root", str(root), "--json", "status"]) == 1  # web7's problem
        return json.loads(capsys.readouterr().out)

    one, several = status(1), status(3)
    pid = {r["pool"]: a.split(".", 1)[1] for r in several for a in r["apps"] if a.startswith("pidapp")}
    assert len(set(pid.values())) == 2 and str(os.getpid()) in pid.values(), pid

    def same(rows):
        return [{**r, "apps": [a for a in r["apps"] if not a.startswith("pidapp")]} for r in rows]

    assert same(several) == same(one)
    [broken] = [r for r in several if r["problem"]]
    assert broken["pool"] == "web7" and "pidapp" in broken["problem"] and "broken for web7" in broken["problem"]
    assert any("wordpress" in a for a in broken["apps"]) is False
    assert all(any(a.startswith("wordpress") for a in r["apps"]) for r in several if r["pool"] != "web7")
    assert _no_children_left()


def test_the_command_exits_without_teardown_its_output_whole(tmp_path):
    """`php-fpm-apparmor` (cli.run) leaves by os._exit once main() returned: no
    interpreter teardown (freeing a thousand pools' objects was a tenth of `status`), so no
    atexit handler runs. What it printed is all there, through a pipe (block-buffered), and
    its exit code is main()'s."""
    import subprocess

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    import wptree

    root = wptree.build(tmp_path / "root", 5)  # its rows stay in stdout's buffer until the exit
    code = ("import atexit, sys; atexit.register(lambda: print('TORN DOWN', file=sys.stderr)); "
            "from php_fpm_apparmor.cli import run; sys.argv[1:] = {args!r}; run()")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # buffered, as on a host
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent / "src")
    for args, rc in ((["--root", str(root), "--json", "status"], 0), (["--root", str(tmp_path / "none"), "status"], 2)):
        proc = subprocess.run([sys.executable, "-c", code.format(args=args)], capture_output=True, text=True, env=env)
        assert proc.returncode == rc and "TORN DOWN" not in proc.stderr, proc.stderr[-500:]
        if rc == 0:
            rows = json.loads(proc.stdout)  # all of it, flushed before the exit
            assert len(rows) == 5 and rows[-1]["apps"]
        else:
            assert "not a directory" in proc.stderr
    # the control: main() returning normally does tear down
    normal = code.replace("run()", "sys.exit(__import__('php_fpm_apparmor.cli').cli.main())")
    proc = subprocess.run([sys.executable, "-c", normal.format(args=["--root", str(root), "status"])],
                          capture_output=True, text=True, env=env)
    assert "TORN DOWN" in proc.stderr

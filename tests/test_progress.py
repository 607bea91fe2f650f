"""Progress on a terminal only: quiet in scripts, under systemd and with --quiet."""

import io
import os
import pty
import subprocess
import sys

from php_fpm_apparmor import progress
from systree import make_tree, pool_conf


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_shown_on_a_tty_after_a_moment_and_cleared(monkeypatch):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    now = [0.0]
    out = Tty()
    p = progress.Progress(stream=out, clock=lambda: now[0])
    p("pools read, building hats", 1, 1000)  # at once: a short run says nothing
    assert out.getvalue() == ""
    now[0] = 1.0
    p("pools read, building hats", 500, 1000)
    now[0] = 1.01
    p("pools read, building hats", 501, 1000)  # throttled
    p("compiling hats", 3, 3)  # a stage's end always shows
    text = out.getvalue()
    assert "building hats 500 of 1000" in text and "501" not in text and "compiling hats 3 of 3" in text
    p.close()
    assert out.getvalue().endswith("\r\x1b[K")


def test_quiet_in_scripts_under_systemd_and_with_quiet(monkeypatch):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    assert progress.wanted(stream=Tty())
    assert not progress.wanted(stream=io.StringIO())  # a pipe or file
    assert not progress.wanted(quiet=True, stream=Tty())
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    assert not progress.wanted(stream=Tty())


def test_the_real_cli_on_a_terminal_and_in_a_pipe(tmp_path):
    root = make_tree(tmp_path, {f"p{i}": pool_conf(f"p{i}", f"/var/www/p{i}", hat=f"p{i}") for i in range(3)})
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    env["PFA_PROGRESS_DELAY"] = "0"
    cmd = [sys.executable, "-m", "php_fpm_apparmor", "--root", str(root), "generate", "--dry-run"]
    # stderr a terminal: the stages show
    master, slave = pty.openpty()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=slave, env=env, timeout=300)
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert proc.returncode == 0
    assert b"building hats 3 of 3" in seen, seen
    # a pipe (a script, a unit's journal): nothing but the results
    piped = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert piped.returncode == 0 and "building hats" not in piped.stderr and "\x1b" not in piped.stderr

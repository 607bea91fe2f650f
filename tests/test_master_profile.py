"""Finding 4 of issue 8 on Debian 13's booted system, checked against what we emit: the
master refuses net_admin quietly, may create and unlink the stock phpX.Y-fpm.sock, and a
hat may read its own label. Compiled with this release's real apparmor_parser (3.0 on the
host, 4.1 in the Debian 13 stage) and judged with python3-apparmor."""

import subprocess
import sys
from pathlib import Path

import pytest

from php_fpm_apparmor import evaluate, validate
from systree import make_tree, pool_conf

needs_parser = pytest.mark.skipif(validate.parser() is None, reason="apparmor_parser not installed")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = make_tree(tmp_path_factory.mktemp("t"), {"a": pool_conf("a", "/var/www/a", hat="a")})
    cmd = [sys.executable, "-m", "php_fpm_apparmor", "--root", str(root), "generate", "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return root


def compile_master(root: Path, flag: str) -> subprocess.CompletedProcess:
    exe = validate.parser()
    return subprocess.run([exe, flag, "-K", "-M", validate.features_for(exe), "-I", str(root / "etc/apparmor.d"),
                           "-I", "/etc/apparmor.d", str(root / "etc/apparmor.d/php-fpm-apparmor")],
                          capture_output=True, text=True, timeout=600)


@needs_parser
def test_everything_compiles_with_this_release_parser(tree):
    proc = compile_master(tree, "-Q")
    assert proc.returncode == 0, proc.stderr


@needs_parser
def test_net_admin_is_denied_quietly(tree):
    text = (tree / "etc/apparmor.d/php-fpm-apparmor").read_text()
    rules = [line.strip() for line in text.splitlines() if "net_admin" in line and not line.strip().startswith("#")]
    assert rules == ["deny capability net_admin,"]  # deny without audit: not logged
    # the parser keeps it as a deny of exactly that capability
    pre = compile_master(tree, "-p")
    assert pre.returncode == 0, pre.stderr
    assert "deny capability net_admin," in pre.stdout and "\n  capability net_admin," not in pre.stdout


def test_master_may_create_and_unlink_the_stock_socket(tree):
    text = (tree / "etc/apparmor.d/php-fpm-apparmor").read_text()
    # the template alone (this machine's php-fpm.d and local/ are not ours to judge)
    text = "\n".join(line for line in text.splitlines() if "include if exists" not in line)
    master = evaluate.parse(text)["php-fpm"]  # this release's tunables
    for sock in ("/run/php/php8.4-fpm.sock", "/run/php/php8.2-fpm.sock"):
        assert evaluate.allows(master, "write", sock), sock  # create, chmod, unlink
    assert not evaluate.allows(master, "write", "/run/php/shop.sock")  # a pool's own: its file grants it
    assert not evaluate.allows(master, "write", "/run/php/php8.4-fpm.sock.d/x")


def test_a_hat_reads_its_own_label_only(tree):
    text = (tree / "etc/apparmor.d/php-fpm.d/a").read_text()
    hat = evaluate.parse(text)["php-fpm//a"]  # this release's tunables and abstractions
    for path in ("/proc/1234/attr/current", "/proc/1234/attr/apparmor/current"):
        assert evaluate.allows(hat, "read", path) and not evaluate.allows(hat, "write", path)
    assert not evaluate.allows(hat, "read", "/proc/1234/attr/exec")
    (rule,) = [r for r in hat.ours if "attr" in r.path.regex]
    # Not owner: the worker's /proc/<pid> is root's after php-fpm drops privileges (booted
    # systems logged the owner rule's denials); another process's label is kept by the
    # ptrace read that opening attr/ takes, and a hat traces nothing but the master.
    assert not rule.owner
    import re
    ptrace = re.findall(r"(?m)^\s*(?:audit\s+)?(?:deny\s+)?ptrace\b.*$", text)
    assert all(line.strip().endswith("peer=php-fpm,") for line in ptrace), ptrace


def test_a_hat_never_writes_in_base_s_ecryptfs_dirs(tree):
    """abstractions/base allows mrixwlk in an ecryptfs home's .Private: the hat takes the
    write and link back, so nothing there is both written and run."""
    text = (tree / "etc/apparmor.d/php-fpm.d/a").read_text()
    hat = evaluate.parse(text)["php-fpm//a"]
    for path in ("/home/web1/.Private/shell.php", "/home/.ecryptfs/web1/.Private/x"):
        assert not evaluate.allows(hat, "write", path), path
        assert not evaluate.allows(hat, "link", path), path
    assert evaluate.allows(hat, "write", "/dev/null")  # base's other grants stay

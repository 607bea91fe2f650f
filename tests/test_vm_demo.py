"""The demo tree's generated policy in a real AppArmor kernel: one boot, five phases.

enforce -> complain -> a pool removed (php-fpm restarted without it, then its hat
unloaded) -> a policy that fails to compile (the running one stays). The app tables of
blog and cloud run in tests/test_plugin_vm.py; here the plain site is the subject.
Every policy comes from the real CLI (`php-fpm-apparmor --root TREE generate`).
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from php_fpm_apparmor import load
from test_plugin_vm import REPO, prepare_tree, vm

PLAIN, BLOG = "/var/www/plain", "/var/www/blog"
# (op, target, expect in enforce, why)
PLAIN_ROWS = [
    ("read", PLAIN + "/index.php", "allow", "its own code"),
    ("list", PLAIN, "allow", "its own directory"),
    ("mail", "root@localhost", "allow", "mail() through the sh and sendmail children"),
    ("read", BLOG + "/wp-config.php", "deny", "another pool's secrets"),
    ("read", "/srv/nextcloud-data/alice/files/secret.txt", "deny", "another pool's data"),
    ("write", PLAIN + "/shell.php", "deny", "webshell in its own root"),
    ("write", PLAIN + "/index.php", "deny", "its own code"),
    ("write", PLAIN + "/.htaccess", "deny", "server config"),
    ("read", "/etc/shadow", "deny", "system secret"),
    ("exec", json.dumps(["/usr/bin/bash", "-c", "id"]), "deny", "a shell outside the child"),
    ("exec", json.dumps(["/usr/bin/cat", "/etc/passwd"]), "deny", "any other program"),
]


def generate(tree: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "php_fpm_apparmor", "--root", str(tree), "generate"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def variant(tree: Path, work: Path, name: str, mutate) -> str:
    """Generate a changed copy of the tree; install its policy as /policy/<name>/main."""
    copy = work / name
    shutil.copytree(tree, copy, symlinks=True)
    mutate(copy)
    generate(copy)
    dest = tree / "policy" / name
    shutil.copytree(copy / "etc/apparmor.d/php-fpm.d", dest / "php-fpm.d")
    main = (copy / "etc/apparmor.d/php-fpm-apparmor").read_text()
    main = main.replace("include if exists <php-fpm.d>", f'include "/policy/{name}/php-fpm.d"')
    assert f"/policy/{name}/php-fpm.d" in main
    (dest / "main").write_text(main)
    return f"/policy/{name}/main"


def set_mode(copy: Path, pool: str, mode: str) -> None:
    cfg = copy / "etc/php-fpm-apparmor/php-fpm-apparmor.conf"
    cfg.write_text(cfg.read_text() + f"\n[{pool}]\nmode = {mode}\n")


@pytest.mark.vm
def test_demo_policy_enforce_complain_remove_and_failed_load(tmp_path):
    harness = vm()
    tree = tmp_path / "tree"
    prepare_tree(tree)
    secret = tree / "srv/nextcloud-data/alice/files/secret.txt"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text("alice's file\n")
    (tree / "var/www/plain/.htaccess").unlink(missing_ok=True)
    complain = variant(tree, tmp_path, "complain", lambda c: set_mode(c, "plain", "complain"))
    removed = variant(tree, tmp_path, "removed",
                      lambda c: (c / "etc/php/8.2/fpm/pool.d/plain.conf").unlink())
    assert not (tree / "policy/removed/php-fpm.d/plain").exists()

    def broken(c):
        (c / "etc/apparmor.d/local/php-fpm.d").mkdir(parents=True, exist_ok=True)
    bad = variant(tree, tmp_path, "broken", broken)
    (tree / "policy/broken/php-fpm.d/zz-broken").write_text("^zz { this is not a rule }\n")
    (tree / "policy/remove-plain").write_text(
        load.removal_text(["plain", "plain_sh", "plain_sendmail"]))

    def probes(expect_override=None):
        out = []
        for op, target, expect, why in PLAIN_ROWS:
            out.append(harness.Probe(pool="plain", socket="/run/php/plain.sock",
                                     script=PLAIN + "/probe.php", op=op, target=target,
                                     expect=expect_override or expect, why=why))
        return out

    blog_ok = [harness.Probe(pool="blog", socket="/run/php/blog.sock", script=BLOG + "/probe.php",
                             op="read", target=BLOG + "/index.php", expect="allow", why="blog still serves"),
               harness.Probe(pool="blog", socket="/run/php/blog.sock", script=BLOG + "/probe.php",
                             op="read", target="/etc/shadow", expect="deny", why="blog still confined")]
    profiles = "cat /sys/kernel/security/apparmor/profiles"
    summary = harness.run(harness.Scenario(
        name="demo", tree=str(tree),
        phases=[
            harness.Phase("enforce", load=["/etc/apparmor.d/php-fpm-apparmor"], probes=probes() + blog_ok,
                          shell=[profiles]),
            harness.Phase("complain", load=[complain], start_fpm=False, probes=probes("allow"),
                          shell=[profiles]),
            harness.Phase("removed", setup=["rm /etc/php/8.2/fpm/pool.d/plain.conf"], load=[removed],
                          probes=blog_ok),
            harness.Phase("unloaded", unload=["/policy/remove-plain"], start_fpm=False, probes=blog_ok,
                          shell=[profiles]),
            harness.Phase("failed-load", load=[bad], start_fpm=False, probes=blog_ok, shell=[profiles]),
        ]), artefacts=str(REPO / "artifacts/vm"))
    assert summary["booted"] and summary["completed"], summary.get("warnings")
    phases = {p["name"]: p for p in summary["phases"]}

    def failures(phase):
        return [f"{r['pool']} {r['op']} {r['target']}: expect {r['expect']}, ok={r['ok']} "
                f"errno={r['errno']} label={r.get('label')} {r['detail'][:120]}"
                for r in phases[phase]["results"] if not r.get("passed")]

    # enforce: every operation works, every attack fails, and the kernel blames the right hat
    assert not failures("enforce"), "\n".join(failures("enforce"))
    enforce = phases["enforce"]
    for r in enforce["results"]:
        assert r["label"].startswith(f"php-fpm//{r['pool']}"), r
        if r["expect"] == "deny" and r["op"] in ("read", "write", "list"):
            # two pools may try the same path: the line for this pool names this pool's hat
            assert any(a.get("apparmor") == "DENIED" and a["profile"] == f"php-fpm//{r['pool']}"
                       for a in r.get("audit", [])), r
    denied = [d for d in enforce["denials"] if d.get("apparmor") == "DENIED"]
    # only the pools' hats, their children and the shared ones (the VM's stand-in sendmail
    # script runs `cat`, which the shared _sendmail profile refuses) ever deny
    assert denied and all(re.match(r"php-fpm//(plain|blog|_sh$|_sendmail$)", d.get("profile", ""))
                          for d in denied), denied
    assert any(d.get("name") == BLOG + "/wp-config.php" and d["profile"] == "php-fpm//plain" for d in denied)
    mail = next(r for r in enforce["results"] if r["op"] == "mail")
    assert mail["ok"], mail

    # complain: nothing blocked, and what enforce refused is logged as ALLOWED for the hat
    assert not failures("complain"), "\n".join(failures("complain"))
    allowed = [d for d in phases["complain"]["denials"] if d.get("apparmor") == "ALLOWED"]
    assert any(d.get("name") == BLOG + "/wp-config.php" and d.get("profile") == "php-fpm//plain"
               for d in allowed), allowed
    assert "php-fpm//plain (complain)" in phases["complain"]["shell"][profiles]["output"]

    # removed: the other pools keep working; after the unload the hat is gone from the kernel
    assert not failures("removed") and not failures("unloaded")
    assert "php-fpm//plain " not in phases["unloaded"]["shell"][profiles]["output"]
    assert "php-fpm//blog (enforce)" in phases["unloaded"]["shell"][profiles]["output"]

    # a policy that does not compile changes nothing: blog still confined by its hat
    load_cmd = [c for c in phases["failed-load"]["commands"] if c["kind"] == "load"]
    assert load_cmd and load_cmd[0]["rc"] != 0, load_cmd
    assert not failures("failed-load"), "\n".join(failures("failed-load"))
    assert all(r["label"].startswith("php-fpm//blog") for r in phases["failed-load"]["results"])

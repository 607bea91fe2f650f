"""The harness itself, against a hand-written policy in a real AppArmor kernel (qemu).

Two pools a and b, one hat each (php-fpm.d/a, php-fpm.d/b) included from a main php-fpm
profile. One boot, three phases: enforce, complain, pool b removed (its hat unloaded).
"""

import json
import os
import textwrap

import pytest

from vm import Phase, Probe, Scenario, available, run

pytestmark = pytest.mark.vm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARTEFACTS = os.environ.get("PFA_ARTEFACTS", os.path.join(ROOT, "artifacts", "vm"))

MAIN = """\
abi <abi/3.0>,
include <tunables/global>

profile php-fpm /usr/sbin/php-fpm* flags=(attach_disconnected) {
  include <abstractions/base>
  include <abstractions/nameservice>
  capability setuid,
  capability setgid,
  capability chown,
  capability kill,
  capability dac_override,
  @{PROC}/@{pid}/attr/{apparmor/,}current rw,
  /etc/php/** r,
  /usr/lib/php/** mr,
  /var/log/php*-fpm.log rw,
  @{run}/php/php*-fpm.pid rw,
  # opcache's lock file, and libnuma-style probing at startup
  /tmp/.ZendSem.* rwk,
  @{sys}/devices/system/node/{,**} r,
  # opcache maps its shared memory through a file that resolves to "/"
  deny / rw,
  signal (send) peer=php-fpm//*,
  change_profile -> php-fpm//*,
  include if exists <php-fpm.d>
}
"""

HAT = """\
# master side: pool {p}'s socket
/run/php/{p}.sock rw,

^{p} {flags}{{
  include <abstractions/base>
  signal (receive) peer=php-fpm,
  /run/php/{p}.sock rw,
  /tmp/.ZendSem.* k,
  /var/www/{p}/ r,
  /var/www/{p}/** r,
  /var/www/{p}/uploads/** w,
{extra}}}
"""

# Pool a may run cwebp and sendmail, each in its own child profile of php-fpm.
EXEC_A = """\
  /usr/bin/dash ix,
  /usr/bin/cwebp Px -> php-fpm//a_cwebp,
  /usr/sbin/sendmail Px -> php-fpm//a_sendmail,
"""
CHILDREN_A = """\

profile a_cwebp {{
  include <abstractions/base>
  /usr/bin/cwebp mr,
  /var/www/a/uploads/** rw,
}}

profile a_sendmail {{
  include <abstractions/base>
  /usr/sbin/sendmail r,
  # a script: the kernel maps its interpreter under this profile
  /usr/bin/dash mrix,
  /usr/bin/cat ix,
}}
"""

POOL = """\
[{p}]
user = {p}
group = {p}
listen = /run/php/{p}.sock
listen.owner = www-data
listen.group = www-data
pm = static
pm.max_children = 1
apparmor_hat = {p}
"""

FPM_CONF = """\
[global]
pid = /run/php/php8.2-fpm.pid
error_log = /var/log/php8.2-fpm.log
include = /etc/php/8.2/fpm/pool.d/*.conf
"""


def write(root, path, text):
    full = os.path.join(root, path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as f:
        f.write(text)


def hat(p, flags=""):
    if p == "a":
        return HAT.format(p=p, flags=flags, extra=EXEC_A) + CHILDREN_A.format()
    return HAT.format(p=p, flags=flags, extra="")


def make_tree(root):
    write(root, "/etc/php/8.2/fpm/php-fpm.conf", FPM_CONF)
    write(root, "/etc/apparmor.d/php-fpm", MAIN)
    for p in ("a", "b"):
        write(root, f"/etc/php/8.2/fpm/pool.d/{p}.conf", POOL.format(p=p))
        write(root, f"/etc/apparmor.d/php-fpm.d/{p}", hat(p))
        write(root, f"/var/www/{p}/secret.txt", f"secret of {p}\n")
        os.makedirs(os.path.join(root, f"var/www/{p}/uploads"))
    # Complain variant of the same profile: a second file defining php-fpm, whose
    # include dir holds hat a with flags=(complain).
    write(root, "/etc/apparmor.d/test/php-fpm-complain",
          MAIN.replace("<php-fpm.d>", "<test/php-fpm.d-complain>"))
    write(root, "/etc/apparmor.d/test/php-fpm.d-complain/a", hat("a", "flags=(complain) "))
    write(root, "/etc/apparmor.d/test/php-fpm.d-complain/b", hat("b"))
    # Names hat b alone, for `apparmor_parser -R`.
    write(root, "/etc/apparmor.d/test/remove-b", "profile php-fpm//b {\n}\n")


def probe(pool, op, target, expect, why=""):
    return Probe(pool=pool, socket=f"/run/php/{pool}.sock",
                 script=f"/var/www/{pool}/probe.php", op=op, target=target,
                 expect=expect, why=why)


ENFORCE = [
    probe("a", "read", "/var/www/a/secret.txt", "allow", "own file"),
    probe("a", "list", "/var/www/a", "allow", "own dir"),
    probe("a", "write", "/var/www/a/uploads/new.txt", "allow", "own uploads"),
    probe("a", "read", "/var/www/b/secret.txt", "deny", "other pool's file"),
    probe("a", "list", "/var/www/b", "deny", "other pool's dir"),
    probe("a", "read", "/etc/shadow", "deny", "system secret"),
    probe("a", "write", "/var/www/a/evil.php", "deny", "code outside uploads"),
    probe("a", "exec", json.dumps(["/usr/bin/cat", "/var/www/a/secret.txt"]), "deny",
          "no exec rule in the hat"),
    probe("b", "read", "/var/www/b/secret.txt", "allow", "own file"),
    probe("b", "read", "/var/www/a/secret.txt", "deny", "other pool's file"),
    probe("a", "exec", json.dumps(["/bin/sh", "-c", "cwebp -version"]), "allow",
          "sh, then cwebp in its child profile"),
    probe("a", "mail", "", "allow", "sh, then sendmail in its child profile"),
    probe("b", "mail", "", "deny", "b may not run a shell"),
]
# cwebp runs (allowed) but its child profile stops it reading another pool's file: the
# exec is "ok": False for a non-exec reason, so it is checked on its own.
CWEBP_ESCAPE = probe("a", "exec", json.dumps(
    ["/usr/bin/cwebp", "-quiet", "/var/www/b/secret.txt", "-o", "/var/www/a/uploads/x.webp"]),
    "deny", "child profile confines cwebp")
COMPLAIN = [
    probe("a", "read", "/var/www/b/secret.txt", "allow", "complain: logged, not blocked"),
    probe("a", "read", "/etc/shadow", "allow", "complain: logged, not blocked"),
    probe("b", "read", "/var/www/a/secret.txt", "deny", "b is still enforced"),
]
REMOVED = [
    probe("a", "read", "/var/www/a/secret.txt", "allow", "a survives b's removal"),
    probe("a", "read", "/var/www/b/secret.txt", "deny", "a still confined"),
]
PROFILES = "cat /sys/kernel/security/apparmor/profiles"


@pytest.fixture(scope="module")
def summary(tmp_path_factory):
    reason = available()
    if reason:
        pytest.skip(reason)
    root = str(tmp_path_factory.mktemp("tree"))
    make_tree(root)
    scenario = Scenario(name="smoke", tree=root, phases=[
        Phase("enforce", load=["/etc/apparmor.d/php-fpm"], probes=ENFORCE + [CWEBP_ESCAPE],
              shell=[PROFILES]),
        Phase("complain", load=["/etc/apparmor.d/test/php-fpm-complain"], probes=COMPLAIN),
        # Pool b removed: the regenerated parent is loaded and php-fpm restarted first,
        # only then is hat b unloaded. (Unloading a hat while its workers run turns them
        # unconfined, and the master may no longer signal them: verified here.)
        Phase("remove-b",
              setup=["rm /etc/php/8.2/fpm/pool.d/b.conf /etc/apparmor.d/php-fpm.d/b"],
              load=["/etc/apparmor.d/php-fpm"]),
        Phase("unload-b", unload=["/etc/apparmor.d/test/remove-b"], start_fpm=False,
              probes=REMOVED, shell=[PROFILES]),
    ])
    return run(scenario, ARTEFACTS)


def phase(summary, name):
    return next(p for p in summary["phases"] if p["name"] == name)


def failures(ph):
    return [(r["pool"], r["op"], r["target"], r["expect"], r["ok"], r["errno"], r["detail"])
            for r in ph["results"] if not r["passed"] and r["target"] != CWEBP_ESCAPE.target]


def test_boots_and_completes(summary):
    assert summary["booted"], "kernel did not reach /init: see serial.log"
    assert summary["completed"] and not summary["timed_out"]
    for ph in summary["phases"]:
        for c in ph["commands"]:
            if c["kind"] in ("load", "unload", "setup"):
                assert c["rc"] == 0, c


def test_enforce(summary):
    ph = phase(summary, "enforce")
    assert failures(ph) == []
    for r in ph["results"]:
        assert r["label"] == f"php-fpm//{r['pool']} (enforce)", r
        if r["expect"] == "deny" and r["op"] in ("read", "write", "list"):
            # The kernel's own record of this very attempt, naming the pool's hat.
            assert any(d["apparmor"] == "DENIED" and d["profile"] == f"php-fpm//{r['pool']}"
                       for d in r["audit"]), r
    assert "php-fpm//a (enforce)" in ph["shell"][PROFILES]["output"]
    denied = [(d["profile"], d.get("name")) for d in ph["denials"] if d["apparmor"] == "DENIED"]
    assert ("php-fpm//a", "/usr/bin/cat") in denied  # the exec probe
    assert ("php-fpm//b", "/usr/bin/dash") in denied  # b's mail(): /bin/sh refused
    # Every DENIED line of this phase names the hat of the pool that tried.
    denied = [d for d in ph["denials"] if d["apparmor"] != "STATUS"]
    assert len(denied) >= 6
    for d in denied:
        assert d["apparmor"] == "DENIED"
        assert d["profile"] in ("php-fpm//a", "php-fpm//b", "php-fpm//a_cwebp"), d


def test_exec_lands_in_child_profile(summary):
    ph = phase(summary, "enforce")
    r = next(r for r in ph["results"] if r["target"] == CWEBP_ESCAPE.target)
    assert r["ok"] is False and "exit=" in r["detail"], r
    denied = [(d["profile"], d.get("name")) for d in ph["denials"] if d["apparmor"] == "DENIED"]
    assert ("php-fpm//a_cwebp", "/var/www/b/secret.txt") in denied


def test_complain_logs_allowed(summary):
    ph = phase(summary, "complain")
    assert failures(ph) == []
    by_target = {(r["pool"], r["target"]): r for r in ph["results"]}
    for target in ("/var/www/b/secret.txt", "/etc/shadow"):
        r = by_target[("a", target)]
        assert r["label"] == "php-fpm//a (complain)"
        assert any(d["apparmor"] == "ALLOWED" and d["profile"] == "php-fpm//a"
                   for d in r["audit"]), r
    r = by_target[("b", "/var/www/a/secret.txt")]
    assert any(d["apparmor"] == "DENIED" and d["profile"] == "php-fpm//b" for d in r["audit"])


def test_removed_hat_is_unloaded(summary):
    ph = phase(summary, "unload-b")
    assert failures(ph) == []
    profiles = ph["shell"][PROFILES]["output"]
    assert "php-fpm//a (enforce)" in profiles
    assert "php-fpm//b" not in profiles
    assert "php-fpm//b" in phase(summary, "enforce")["shell"][PROFILES]["output"]
    assert not summary["warnings"]  # every worker stopped with its master


def test_learn_reads_the_kernels_own_records(summary):
    """The kernel's real complain-mode lines (dmesg form), through learn's reader."""
    from php_fpm_apparmor import auditlog

    counter = auditlog.Counter()
    counter.feed("".join(d["raw"] + "\n" for d in phase(summary, "complain")["denials"]).encode())
    seen = {(s.event.status, s.event.profile, s.event.name) for s in counter.seen()}
    assert ("ALLOWED", "php-fpm//a", "/var/www/b/secret.txt") in seen
    assert ("ALLOWED", "php-fpm//a", "/etc/shadow") in seen
    assert ("DENIED", "php-fpm//b", "/var/www/a/secret.txt") in seen
    # whose file and whose process: what keeps learn from offering another user's files
    opens = [s.event for s in counter.seen() if s.event.operation == "open"]
    assert opens and all(e.fsuid is not None and e.ouid is not None for e in opens), opens
    assert any(e.name == "/etc/shadow" and e.ouid == 0 for e in opens)

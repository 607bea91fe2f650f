"""The harness's host-side logic that needs no VM: plan quoting, log parsing, verdicts."""

import json
import subprocess

import pytest

from vm import Phase, Probe, Scenario, parse_audit
from vm.driver import _parse, _plan

DENIED = ('[   13.1] audit: type=1400 audit(1795961.1:5): apparmor="DENIED" operation="open" '
          'profile="php-fpm//a" name="/var/www/b/secret.txt" pid=248 comm="php-fpm8.2" '
          'requested_mask="r" denied_mask="r" fsuid=2000 ouid=0')


def test_parse_audit_fields():
    rec = parse_audit(DENIED)
    assert rec["apparmor"] == "DENIED"
    assert rec["profile"] == "php-fpm//a"
    assert rec["name"] == "/var/www/b/secret.txt"
    assert rec["denied_mask"] == "r" and rec["pid"] == "248"


def test_parse_audit_hex_name():
    # The kernel hex-encodes names with spaces.
    line = DENIED.replace('name="/var/www/b/secret.txt"', "name=" + b"/var/www/a b".hex().upper())
    assert parse_audit(line)["name"] == "/var/www/a b"


def test_probe_validation():
    with pytest.raises(ValueError):
        Probe("a", "/run/a.sock", "/var/www/a/p.php", "delete", "/x", "deny")
    with pytest.raises(ValueError):
        Probe("a", "/run/a.sock", "/var/www/a/p.php", "exec", "/bin/sh", "allow")
    with pytest.raises(ValueError):
        Probe("a", "run/a.sock", "/var/www/a/p.php", "read", "/x", "allow")


HOSTILE = "/var/www/a/'$(touch /pwned)`id`;\n\"x"


def test_plan_quotes_hostile_values():
    """Every value reaches the VM's shell as one literal word."""
    pr = Probe("a", "/run/php/a.sock", "/var/www/a/probe.php", "read", HOSTILE, "deny")
    sc = Scenario("s", "/nonexistent", phases=[
        Phase("p1", load=[HOSTILE], probes=[pr], shell=["echo hi"])])
    plan, ids = _plan(sc)
    # Run the plan under the real shell with each command replaced by an argv dumper.
    dump = 'for a in "$@"; do printf "%s\\0" "$a"; done; printf "\\n---\\n"'
    funcs = "".join(f'{f}() {{ printf "{f}\\0"; {dump}; }}\n'
                    for f in ("dac_open", "phase", "load", "unload", "fpm_start", "probe",
                              "shell", "phase_end"))
    out = subprocess.run(["/usr/bin/dash", "-c", funcs + plan], capture_output=True,
                         check=True).stdout.decode()
    calls = [c.strip("\n").split("\0")[:-1] for c in out.split("---") if c.strip("\n")]
    assert ["dac_open", HOSTILE] in calls
    assert any(c[0] == "load" and c[2] == HOSTILE for c in calls)
    probe_call = next(c for c in calls if c[0] == "probe")
    assert probe_call[2:4] == ["/run/php/a.sock", "/var/www/a/probe.php"]
    assert "target=" in probe_call[4] and "\n" not in probe_call[4]


def test_parse_serial_log():
    ok = Probe("a", "/run/php/a.sock", "/var/www/a/probe.php", "read", "/var/www/a/x", "allow")
    bad = Probe("a", "/run/php/a.sock", "/var/www/a/probe.php", "read",
                "/var/www/b/secret.txt", "deny")
    missing = Probe("a", "/run/php/a.sock", "/var/www/a/probe.php", "read", "/nope", "deny")
    sc = Scenario("s", "/nonexistent", phases=[Phase("p1", probes=[ok, bad, missing])])
    plan, ids = _plan(sc)
    pid = {ids[i][2].target: i for i in ids if ids[i][0] == "probe"}
    res = lambda d: json.dumps(dict(d, uid=2000, pid=7))  # noqa: E731
    serial = "\n".join([
        "junk from the BIOS",
        "@@BOOTED 6.1.0 Y",
        "@@PHASE p1",
        f"@@RESULT {pid['/var/www/a/x']} " + res({"ok": True, "errno": None, "detail": ""}),
        f"@@LABEL {pid['/var/www/a/x']} php-fpm//a (enforce)",
        f"@@RESULT {pid['/var/www/b/secret.txt']} " + res({"ok": False, "errno": 13, "detail": ""}),
        f"@@RESULT {pid['/nope']} " + res({"ok": False, "errno": 2, "detail": ""}),
        "@@AUDIT " + DENIED,
        "@@ENDPHASE p1",
        "@@DONE",
    ])
    out = _parse(serial, ids, sc)
    assert out["booted"] and out["completed"]
    r = {x["target"]: x for x in out["phases"][0]["results"]}
    assert r["/var/www/a/x"]["passed"] and r["/var/www/a/x"]["label"] == "php-fpm//a (enforce)"
    assert r["/var/www/b/secret.txt"]["passed"]
    assert r["/var/www/b/secret.txt"]["audit"][0]["profile"] == "php-fpm//a"
    assert not r["/nope"]["passed"]  # ENOENT is not a denial
    assert out["denials"][0]["phase"] == "p1"


def test_parse_missing_result_fails_the_probe():
    pr = Probe("a", "/run/php/a.sock", "/var/www/a/probe.php", "read", "/x", "deny")
    sc = Scenario("s", "/nonexistent", phases=[Phase("p1", probes=[pr])])
    plan, ids = _plan(sc)
    out = _parse("@@BOOTED\n@@PHASE p1\n", ids, sc)
    r = out["phases"][0]["results"][0]
    assert r["ok"] is None and not r["passed"] and "never ran" in r["detail"]
    assert not out["completed"]

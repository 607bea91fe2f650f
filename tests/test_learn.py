"""learn: audit lines (auditd, dmesg, journal forms) -> local overrides, least privilege kept."""

import json

import pytest

from php_fpm_apparmor import evaluate
from php_fpm_apparmor.learn import parse_line
from systree import make_tree, pool_conf

AUDITD = ('type=AVC msg=audit(1700000000.123:{n}): apparmor="{st}" operation="{op}" '
          'profile="{prof}" name="{name}" pid=42 comm="php-fpm8.2" requested_mask="{mask}" '
          'denied_mask="{mask}" fsuid=33 ouid=33')
DMESG = ('[ 1234.5678] audit: type=1400 audit(1700000000.5:{n}): apparmor="{st}" operation="{op}" '
         'profile="{prof}" name="{name}" pid=42 comm="php-fpm8.2" requested_mask="{mask}" '
         'denied_mask="{mask}" fsuid=33 ouid=33')


def line(n, name, mask="r", op="open", prof="php-fpm//a", st="DENIED", form=AUDITD):
    return form.format(n=n, name=name, mask=mask, op=op, prof=prof, st=st)


def test_parse_line_forms():
    ev = parse_line(line(1, "/var/www/a/x"))
    assert (ev.status, ev.operation, ev.profile, ev.name, ev.requested) == \
        ("DENIED", "open", "php-fpm//a", "/var/www/a/x", "r")
    assert parse_line(line(2, "/x", st="ALLOWED", form=DMESG)).status == "ALLOWED"
    hexname = line(3, "X").replace('name="X"', "name=2F7661722F7777772F6120622F22")
    assert parse_line(hexname).name == '/var/www/a b/"'  # hex-encoded names are decoded
    assert parse_line("Nov 29 kernel: something else") is None
    assert parse_line(line(4, "/x", st="AUDIT")) is None
    kern = "Nov 29 10:00:01 web1 kernel: " + line(5, "/y", form=DMESG)
    assert parse_line(kern).name == "/y"
    iso = "2026-11-29T10:00:01.123456+00:00 web1 kernel: " + line(6, "/z", form=DMESG)
    assert parse_line(iso).name == "/z"


@pytest.mark.parametrize("forged", [
    # what logger, or PHP's syslog(), can put in a log: never a rule
    'Mar  1 10:00:00 host www-data: audit(1700000000.123:42): apparmor="DENIED" operation="open" '
    'profile="php-fpm//b" name="/etc/shadow" requested_mask="r" denied_mask="r" fsuid=33 ouid=0',
    'Mar  1 10:00:00 host kernelx: audit: type=1400 audit(1700000000.1:4): apparmor="DENIED" '
    'operation="open" profile="php-fpm//b" name="/etc/shadow" requested_mask="r" denied_mask="r"',
    'type=USER_AVC msg=audit(1700000000.1:4): apparmor="DENIED" operation="open" '
    'profile="php-fpm//b" name="/etc/shadow" requested_mask="r" denied_mask="r"',
    'x type=AVC msg=audit(1700000000.1:4): apparmor="DENIED" operation="open" '
    'profile="php-fpm//b" name="/etc/shadow" requested_mask="r" denied_mask="r"',
])
def test_forged_lines_are_not_events(forged):
    assert parse_line(forged) is None


def test_learn_proposes_and_writes_only_what_is_safe(tmp_path, cli):
    root = make_tree(tmp_path, {"a": pool_conf("a", "/var/www/a", hat="a"),
                                "b": pool_conf("b", "/var/www/b", hat="b")})
    assert cli("generate", root=root).returncode == 0
    log = root / "var/log/audit/audit.log"
    log.parent.mkdir(parents=True)
    log.write_text("\n".join([
        line(1, "/var/www/a/data/cache.json", mask="wc"),
        line(2, "/var/www/a/data/cache.json", mask="r"),
        line(3, "/srv/shared-assets/logo.png", form=DMESG, st="ALLOWED"),
        line(4, "/var/www/b/wp-config.php"),                 # another pool's root
        line(5, "/var/www/a/uploads/shell.php", mask="wc"),  # code into the site
        line(6, "/usr/bin/convert", mask="x", op="exec"),    # needs a child profile
        line(7, "X", mask="r").replace('name="X"', "name=" + '/var/www/a/q"uote'.encode().hex().upper()),
        line(8, "/etc/hostname", prof="php-fpm//_sh"),
        line(9, "/etc/x", prof="some-other-profile"),
        "garbage line",
    ]) + "\n")
    proc = cli("--json", "learn", root=root)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["rules"] == {
        "_sh": ['"/etc/hostname" r,'],
        # only what is missing: a's root is readable already (the quoted name too)
        "a": ['"/srv/shared-assets/logo.png" r,', '"/var/www/a/data/cache.json" w,'],
    }
    assert out["already_allowed"] == 2
    why = {r["what"]: r["why"] for r in out["refused"]}
    assert "inside pool b's root" in why["r /var/www/b/wp-config.php"]
    assert "named exception" in why["w /var/www/a/uploads/shell.php"]
    assert "child profile" in why["exec /usr/bin/convert"]

    proc = cli("learn", "--write", root=root)
    assert proc.returncode == 0, proc.stderr
    local = (root / "etc/apparmor.d/local/php-fpm.d/a").read_text()
    assert local.startswith("# learned by php-fpm-apparmor on ") and '"/var/www/a/data/cache.json" w,' in local
    assert not (root / "etc/apparmor.d/local/php-fpm.d/b").exists()
    # learning twice adds nothing twice
    assert cli("learn", "--write", root=root).returncode == 0
    assert (root / "etc/apparmor.d/local/php-fpm.d/a").read_text() == local
    # the generated file is untouched; the local one is included by the hat
    text = (root / "etc/apparmor.d/php-fpm.d/a").read_text()
    assert "include if exists <local/php-fpm.d/a>" in text and "cache.json" not in text


def test_learned_rules_that_break_the_profile_are_taken_back(tmp_path, cli):
    root = make_tree(tmp_path, {"a": pool_conf("a", "/var/www/a", hat="a")})
    assert cli("generate", root=root).returncode == 0
    local = root / "etc/apparmor.d/local/php-fpm.d/a"
    local.parent.mkdir(parents=True)
    local.write_text("# mine\n")
    log = tmp_path / "audit.log"
    # an "x" path AppArmor cannot take as a file rule: a bare "/" with only "m" is fine, so
    # break the profile through the admin's own file instead and check learn leaves it alone
    log.write_text(line(1, "/srv/a-assets/ok.txt") + "\n")
    local.write_text("# mine\nnot a rule\n")
    proc = cli("learn", "--write", "--log", str(log), root=root)
    assert proc.returncode == 1
    assert "learned rules removed again" in proc.stderr
    assert local.read_text() == "# mine\nnot a rule\n"


def test_learned_rule_is_granted_by_the_profile(tmp_path, cli):
    root = make_tree(tmp_path, {"a": pool_conf("a", "/var/www/a", hat="a")})
    log = tmp_path / "audit.log"
    log.write_text(line(1, "/srv/fonts/x.ttf") + "\n")
    assert cli("generate", root=root).returncode == 0
    assert cli("learn", "--write", "--log", str(log), root=root).returncode == 0
    text = (root / "etc/apparmor.d/php-fpm.d/a").read_text()
    local = (root / "etc/apparmor.d/local/php-fpm.d/a").read_text()
    hat = evaluate.parse(text.replace("include if exists <local/php-fpm.d/a>", local))["php-fpm//a"]
    assert evaluate.allows(hat, "read", "/srv/fonts/x.ttf")
    assert not evaluate.allows(hat, "read", "/srv/fonts/y.ttf")

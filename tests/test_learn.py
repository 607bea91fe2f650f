"""learn: audit lines (auditd, dmesg, journal forms) -> local overrides, least privilege kept."""

import gzip
import json
import os
import pty
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from php_fpm_apparmor import evaluate, generate, learn
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


def test_another_users_file_is_never_offered(tmp_path, cli):
    """A hacked site probing during the learning period (complain mode logs ALLOWED) reads
    alice's files: the log's ouid says whose they are. Root's files and the pool user's
    own are offered; another user's outside the site never, inside the site's roots (a
    deploy user's files) as usual."""
    root = make_tree(tmp_path, {"a": pool_conf("a", "/var/www/a", hat="a")})
    assert cli("generate", root=root).returncode == 0
    log = tmp_path / "audit.log"

    def owned(n, name, ouid, mask="r"):
        return line(n, name, mask=mask, st="ALLOWED").replace("ouid=33", f"ouid={ouid}")

    log.write_text("\n".join([
        owned(1, "/home/alice/notes.txt", 33),
        owned(2, "/home/alice/notes.txt", 1002),  # one record of another user's file is enough
        owned(3, "/srv/shared/logo.png", 0),  # root's
        owned(4, "/srv/a-data/cache.json", 33, mask="wc"),  # the pool user's own
        owned(5, "/var/www/a/deploy/cache.json", 1000, mask="wc"),  # inside the site
    ]) + "\n")
    proc = cli("--json", "learn", "--log", str(log), root=root)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["rules"] == {"a": ['"/srv/a-data/cache.json" w,', '"/srv/shared/logo.png" r,',
                                  '"/var/www/a/deploy/cache.json" w,']}, out["rules"]
    why = {r["what"]: r["why"] for r in out["refused"]}
    assert "another user's file (uid 1002; the pool runs as uid 33)" in why["r /home/alice/notes.txt"], why


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


# --- a held-back-style log on the demo tree: WordPress (+WebP Express, WP Super Cache),
# Nextcloud with its data outside its root (in complain mode), a plain site -----------------

REPO = Path(__file__).resolve().parents[1]
KERN = ('{ts} web1 kernel: [ 1234.567890] audit: type=1400 audit({t:.3f}:{n}): apparmor="{st}" '
        'operation="{op}" profile="{prof}" name="{name}" pid={n} comm="php-fpm8.2" '
        'requested_mask="{mask}" denied_mask="{mask}" fsuid=33 ouid=33')
T0 = 1764400000.0  # 2025-11-29


def rec(n, prof, name, mask="r", st="DENIED", op="open", form=AUDITD, t=None):
    t = T0 + n if t is None else t
    text = form.replace("1700000000.123:{n}", "{t:.3f}:{n}").replace("1700000000.5:{n}", "{t:.3f}:{n}")
    return text.format(n=n, name=name, mask=mask, op=op, prof=f"php-fpm//{prof}", st=st, t=t,
                       ts=time.strftime("%b %d %H:%M:%S", time.localtime(t)))


# What each pool owns, probed with concrete paths: no learned rule may reach one of them.
OWNED = {
    "blog": ["/var/www/blog/wp-config.php", "/var/www/blog/x", "/var/lib/php/sessions/blog/sess_x",
             "/tmp/php-blog/x", "/run/php/blog.sock", "/var/log/php-fpm/blog.error.log"],
    "cloud": ["/var/www/cloud/config/config.php", "/srv/nextcloud-data/admin/files/a.txt",
              "/srv/nextcloud-data/x.css", "/var/lib/php/sessions/cloud/sess_x", "/tmp/php-cloud/x",
              "/run/php/cloud.sock"],
    "plain": ["/var/www/plain/index.php", "/var/lib/php/sessions/plain/sess_x", "/run/php/plain.sock"],
}

HELD_BACK = [
    # blog, complain-mode replays of what its hat allows today (uploads)
    ("blog", "/var/www/blog/wp-content/uploads/2026/10/cat.png", "wc", "ALLOWED"),
    ("blog", "/var/www/blog/wp-content/uploads/2026/11/dog.png", "wc", "ALLOWED"),
    ("blog", "/var/www/blog/wp-content/cache/supercache/example.org/index.html", "wc", "ALLOWED"),
    # other pools' paths: data dir outside cloud's root, session, temp, socket, root
    ("blog", "/srv/nextcloud-data/admin/files/secret.txt", "r", "DENIED"),
    ("blog", "/var/lib/php/sessions/cloud/sess_abc", "r", "DENIED"),
    ("blog", "/tmp/php-cloud/oc_tmp_x", "w", "DENIED"),
    ("blog", "/run/php/cloud.sock", "rw", "DENIED"),
    ("cloud", "/var/www/blog/wp-config.php", "r", "ALLOWED"),
    # code into a site
    ("blog", "/var/www/blog/wp-content/uploads/x.php", "wc", "DENIED"),
    ("blog", "/var/www/blog/wp-content/themes/t/cache/.htaccess", "wc", "DENIED"),
    ("blog", "/var/www/blog/wp-content/uploads/2026/11/y.PHP", "wc", "DENIED"),
    # real needs: three files of one directory and extension -> one glob
    ("blog", "/var/www/blog/wp-content/themes/t/cache/a.css", "wc", "DENIED"),
    ("blog", "/var/www/blog/wp-content/themes/t/cache/b.css", "wc", "DENIED"),
    ("blog", "/var/www/blog/wp-content/themes/t/cache/c.css", "wc", "DENIED"),
    # system directory: never globbed
    ("blog", "/usr/share/fonts/truetype/x.ttf", "r", "DENIED"),
    ("blog", "/usr/share/fonts/truetype/y.ttf", "r", "DENIED"),
    ("cloud", "/srv/nextcloud-data/admin/files/new.txt", "wc", "ALLOWED"),
    ("cloud", "/etc/ImageMagick-6/policy.xml", "r", "ALLOWED"),
]


@pytest.fixture
def demo(tmp_path, cli):
    root = tmp_path / "tree"
    shutil.copytree(REPO / "demo", root, symlinks=True)
    assert cli("generate", root=root).returncode == 0
    audit = root / "var/log/audit"
    audit.mkdir(parents=True)
    lines = [rec(i, p, name, m, st) for i, (p, name, m, st) in enumerate(HELD_BACK)]
    lines.append(rec(90, "blog", "/usr/bin/convert", "x", op="exec"))
    # forged: user-space forms (auditd's USER_AVC, a syslog tag) never become events
    lines.append('type=USER_AVC msg=audit(1764400001.100:4): apparmor="DENIED" operation="open" '
                 'profile="php-fpm//blog" name="/etc/shadow" requested_mask="r" denied_mask="r"')
    (audit / "audit.log.1").write_text("\n".join(lines[:8]) + "\n")  # rotated by auditd
    (audit / "audit.log").write_text("\n".join(lines[8:]) + "\n")
    kern = [rec(100, "plain", "/srv/plain-shared/data/1.json", form=KERN),
            rec(101, "plain", "/srv/plain-shared/data/2.json", form=KERN),
            rec(102, "plain", "/srv/plain-shared/img/2026/10/a.png", "wc", form=KERN),
            rec(103, "plain", "/srv/plain-shared/img/2026/11/b.png", "wc", form=KERN),
            'Nov 29 10:00:01 web1 www-data: audit: type=1400 audit(1764400104.100:9): apparmor="DENIED" '
            'operation="open" profile="php-fpm//plain" name="/etc/shadow" requested_mask="r" denied_mask="r"',
            'Nov 29 10:00:01 web1 kernel: x audit: type=1400 audit(1764400105.100:9): apparmor="DENIED" '
            'operation="open" profile="php-fpm//plain" name="/etc/gshadow" requested_mask="r" denied_mask="r"']
    (root / "var/log/kern.log.1").write_text("\n".join(kern) + "\n")
    with gzip.open(root / "var/log/kern.log.2.gz", "wt") as f:
        f.write(rec(99, "plain", "/srv/plain-shared/data/3.json", form=KERN) + "\n")
    (root / "var/log/kern.log").write_text("")
    return root


def learn_json(cli, root, *args):
    proc = cli("--json", "learn", *args, root=root)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def current_hat(root: Path, name: str, file: str | None = None):
    text = (root / f"etc/apparmor.d/php-fpm.d/{file or name}").read_text()
    local = root / f"etc/apparmor.d/local/php-fpm.d/{name}"
    text = text.replace(f"include if exists <local/php-fpm.d/{name}>", local.read_text() if local.exists() else "")
    return evaluate.parse(text)[f"php-fpm//{name}"]


def test_held_back_log(demo, cli):
    out = learn_json(cli, demo)
    rules = out["rules"]
    assert rules == {
        "blog": ['"/usr/share/fonts/truetype/x.ttf" r,', '"/usr/share/fonts/truetype/y.ttf" r,',
                 '"/var/www/blog/wp-content/themes/t/cache/*.css" w,'],
        "cloud": ['"/etc/ImageMagick-6/policy.xml" r,'],
        "plain": ['"/srv/plain-shared/data/*.json" r,', '"/srv/plain-shared/img/2026/**.png" w,'],
    }
    # nothing the current policy allows: the uploads and cache replays are counted, not proposed
    assert out["already_allowed"] == 4
    for p in out["proposals"]:
        hat = current_hat(demo, p["profile"])
        for path in p["paths"]:
            assert not all(evaluate.allows(hat, learn._OP[c], path) for c in p["rule"].split()[-1].rstrip(","))
    # none reaches another pool: every proposed pattern, probed with every pool's paths
    for p in out["proposals"]:
        pattern = json.loads(p["rule"].rsplit(" ", 1)[0])
        for pool, paths in OWNED.items():
            if pool != p["profile"]:
                assert not [x for x in paths if evaluate.matches(pattern.replace('\\"', '"'), x)], p
    why = {r["what"]: r["why"] for r in out["refused"]}
    assert why["r /srv/nextcloud-data/admin/files/secret.txt"].startswith("pool cloud's")
    assert why["r /var/lib/php/sessions/cloud/sess_abc"] == "pool cloud's session dir"
    assert why["w /tmp/php-cloud/oc_tmp_x"].startswith("pool cloud's")
    assert why["rw /run/php/cloud.sock"].startswith("pool cloud's socket")
    assert why["r /var/www/blog/wp-config.php"] == "inside pool blog's root"
    assert "named exception" in why["w /var/www/blog/wp-content/uploads/x.php"]
    assert "named exception" in why["w /var/www/blog/wp-content/themes/t/cache/.htaccess"]
    assert "named exception" in why["w /var/www/blog/wp-content/uploads/2026/11/y.PHP"]
    assert "child profile" in why["exec /usr/bin/convert"]
    # counts and times; the rotated .1 and .gz were read
    css = next(p for p in out["proposals"] if p["rule"].endswith('*.css" w,'))
    assert (css["count"], css["first"], css["last"]) == (3, T0 + 11, T0 + 13)
    json_rule = next(p for p in out["proposals"] if "*.json" in p["rule"])
    assert (json_rule["count"], json_rule["first"]) == (3, T0 + 99)
    assert str(demo / "var/log/kern.log.2.gz") in out["read"] and str(demo / "var/log/audit/audit.log.1") in out["read"]
    # forged lines: nowhere
    assert "shadow" not in json.dumps(out)


def test_learned_globs_grant_new_names_but_no_code_and_replay_proposes_nothing(demo, cli):
    proc = cli("learn", "--write", root=demo)
    assert proc.returncode == 0, proc.stderr
    blog = current_hat(demo, "blog")
    assert evaluate.allows(blog, "write", "/var/www/blog/wp-content/themes/t/cache/d.css")  # next name
    assert not evaluate.allows(blog, "write", "/var/www/blog/wp-content/themes/t/cache/d.php")
    assert not evaluate.allows(blog, "read", "/srv/nextcloud-data/admin/files/secret.txt")
    plain = current_hat(demo, "plain")
    assert evaluate.allows(plain, "write", "/srv/plain-shared/img/2026/12/c.png")
    assert not evaluate.allows(plain, "write", "/srv/plain-shared/img/2026/12/c.php")
    # replaying the same log after the regenerate: only refusals are left
    out = learn_json(cli, demo)
    assert out["rules"] == {} and out["proposals"] == []
    assert out["already_allowed"] == 4 + 3 + 2 + 1 + 3 + 2  # + the learned ones
    assert len(out["refused"]) == 9


def test_pool_and_since_select(demo, cli):
    out = learn_json(cli, demo, "--pool", "plain", "--pool", "cloud")
    assert sorted(out["rules"]) == ["cloud", "plain"]
    assert all(r["profile"].startswith(("php-fpm//plain", "php-fpm//cloud")) for r in out["refused"])
    assert learn_json(cli, demo, "--pool", "blog", "--since", str(int(T0 + 14)))["rules"] == {
        "blog": ['"/usr/share/fonts/truetype/x.ttf" r,', '"/usr/share/fonts/truetype/y.ttf" r,']}
    assert learn_json(cli, demo, "--since", "boot")["rules"] == {}  # all of it is older
    proc = cli("learn", "--pool", "nosuch", root=demo)
    assert proc.returncode == 2 and "nosuch" in proc.stderr
    proc = cli("learn", "--since", "yesterday-ish", root=demo)
    assert proc.returncode == 2 and "--since" in proc.stderr


def test_unsafe_globs_are_not_offered(demo):
    plan = generate.plan(str(demo))
    t = learn.targets(plan)
    assert "cloud" in t and "cloud_sh" in t and "_sh" in t and "nosuch" not in t
    assert "system directory" in learn.glob_problem("/usr/share/fonts/**", "r", t["blog"])
    assert "write" in learn.glob_problem("/var/www/blog/wp-content/themes/t/cache/*", "w", t["blog"])
    assert learn.glob_problem("/var/www/blog/wp-content/themes/t/cache/*", "r", t["blog"]) is None
    assert "pool cloud" in learn.glob_problem("/srv/**.txt", "r", t["blog"]) or \
        "system" in learn.glob_problem("/srv/**.txt", "r", t["blog"])
    assert "pool cloud" in learn.glob_problem("/srv/nextcloud-data/admin/**", "r", t["blog"])
    assert "pool blog" in learn.glob_problem("/var/www/b*/**", "r", t["plain"])
    assert learn.glob_problem("/srv/plain-shared/**.json", "r", t["plain"]) is None


# --- asking on a terminal: a real pseudo-terminal, as an admin types --------------------

def run_on_pty(root: Path, args, answers, timeout=120):
    """Run the CLI with a pty as its terminal; answer each prompt in turn. Returns (rc, output)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "php_fpm_apparmor", "--root", str(root), *args],
                            stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    out, answers, deadline = b"", list(answers), time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
                if out.rstrip().endswith(b"s(T)op:") and answers:
                    os.write(master, answers.pop(0).encode() + b"\n")
            elif proc.poll() is not None:
                break
        rc = proc.wait(timeout=60)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return rc, out.decode(errors="replace")


def test_terminal_asks_allow_glob_skip(demo):
    # first offer: plain's *.json (glob once -> the next wider safe one), second: skip
    rc, out = run_on_pty(demo, ["learn", "--pool", "plain"], ["g", "a", "s"])
    assert rc == 0, out
    assert "[1/2] profile plain: 3 event(s)" in out and "seen: /srv/plain-shared/data/1.json" in out
    assert '> 1. "/srv/plain-shared/data/*.json" r,' in out and '> 2. "/srv/plain-shared/data/*" r,' in out
    local = (demo / "etc/apparmor.d/local/php-fpm.d/plain").read_text()
    assert '"/srv/plain-shared/data/*" r,' in local and "png" not in local
    assert "appended to" in out
    assert ": 2 rule(s) proposed, 1 allowed, " in out  # not the allowed count as "proposed"
    # stop at once: nothing else is written
    rc, out = run_on_pty(demo, ["learn", "--pool", "plain"], ["t"])
    assert rc == 0 and (demo / "etc/apparmor.d/local/php-fpm.d/plain").read_text() == local


def test_no_terminal_no_questions(demo, cli):
    proc = cli("learn", "--pool", "plain", root=demo)  # stdin is not a terminal: list only
    assert proc.returncode == 0 and "(A)llow" not in proc.stdout
    assert '"/srv/plain-shared/data/*.json" r,  # 3 event(s), 3 paths' in proc.stdout
    assert not (demo / "etc/apparmor.d/local/php-fpm.d/plain").exists()


def test_listing_another_pools_session_or_temp_dir_is_refused(demo, cli):
    """The names in a session dir are session ids: reading the directory is another pool's
    data, though no sess_* pattern matches the directory itself."""
    log = demo / "var/log/audit/audit.log"
    log.write_text(rec(1, "blog", "/var/lib/php/sessions/cloud/") + "\n"
                   + rec(2, "blog", "/tmp/php-cloud/") + "\n")
    (demo / "var/log/audit/audit.log.1").unlink()
    proc = cli("--json", "learn", "--pool", "blog", "--log", str(log), root=demo)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["proposals"] == []
    why = {r["what"]: r["why"] for r in out["refused"]}
    assert set(why) == {"r /var/lib/php/sessions/cloud/", "r /tmp/php-cloud/"}
    assert why["r /var/lib/php/sessions/cloud/"].startswith("pool cloud's session")
    assert why["r /tmp/php-cloud/"].startswith("pool cloud's")


# --- complain -> enforce ----------------------------------------------------------------

def _mode(root: Path) -> str:
    return (root / "etc/php-fpm-apparmor/php-fpm-apparmor.conf").read_text()


def test_enforce_if_quiet(demo, cli):
    now = time.time()
    log = demo / "var/log/audit/audit.log"
    log.write_text(rec(1, "cloud", "/etc/ImageMagick-6/policy.xml", st="ALLOWED", t=now - 2 * 86400) + "\n"
                   + rec(2, "cloud_sh", "/usr/lib/libreoffice/x", st="ALLOWED", t=now - 3600) + "\n")
    (demo / "var/log/audit/audit.log.1").unlink()
    before = _mode(demo)
    proc = cli("enforce", "cloud", "--if-quiet", "7", root=demo)
    assert proc.returncode == 1, proc.stderr
    assert "2 complain-mode event(s) for hat cloud" in proc.stdout and "/usr/lib/libreoffice/x" in proc.stdout
    assert _mode(demo) == before
    st = json.loads(cli("--json", "status", root=demo).stdout)
    quiet = {r["pool"]: r["quiet"] for r in st}
    assert quiet["blog"] is None and quiet["cloud"] == f"quiet since {learn.when(now - 3600)}"
    # quiet for the last day: switched
    log.write_text(rec(1, "cloud", "/etc/ImageMagick-6/policy.xml", st="ALLOWED", t=now - 2 * 86400) + "\n"
                   + rec(2, "blog", "/x", st="ALLOWED", t=now - 60) + "\n")
    proc = cli("enforce", "cloud", "--if-quiet", "1", root=demo)
    assert proc.returncode == 0, proc.stderr
    assert "no complain-mode event for hat cloud" in proc.stdout
    assert _mode(demo) != before and "mode = enforce" in _mode(demo).split("[cloud]", 1)[1]


def test_enforce_if_quiet_needs_logs_that_reach_back(demo, cli):
    """No complain event in logs that begin two days ago proves nothing about seven days;
    and no log at all proves nothing: the pool stays in complain, and says why."""
    now = time.time()
    audit = demo / "var/log/audit"
    for p in [audit / "audit.log.1", *(demo / "var/log").glob("kern.log*")]:
        p.unlink()
    (audit / "audit.log").write_text(rec(1, "blog", "/x", st="ALLOWED", t=now - 2 * 86400) + "\n")
    before = _mode(demo)
    proc = cli("enforce", "cloud", "--if-quiet", "7", root=demo)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"but they begin {learn.when(now - 2 * 86400)}" in proc.stdout and "not 7 day(s) back" in proc.stdout
    assert _mode(demo) == before
    (audit / "audit.log").unlink()
    proc = cli("enforce", "cloud", "--if-quiet", "1", root=demo)
    assert proc.returncode == 1 and "tell no time (read no log found)" in proc.stdout, proc.stdout
    assert _mode(demo) == before
    # A rotation written before the period began: the logs reach back far enough.
    (audit / "audit.log.1").write_text(rec(1, "blog", "/x", st="ALLOWED", t=now - 30 * 86400) + "\n")
    os.utime(audit / "audit.log.1", (now - 20 * 86400, now - 20 * 86400))
    (audit / "audit.log").write_text(rec(2, "blog", "/y", st="ALLOWED", t=now - 60) + "\n")
    proc = cli("enforce", "cloud", "--if-quiet", "7", root=demo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "mode = enforce" in _mode(demo).split("[cloud]", 1)[1]


@pytest.mark.parametrize("first, expect", [
    ("type=AVC msg=audit(1764608400.123:45): apparmor=\"DENIED\"", 1764608400.123),
    ("2026-11-30T10:00:00.123456+00:00 host kernel: audit: type=1400", "2026-11-30T10:00:00"),
    ("Nov 30 10:00:00 host kernel: [ 1.2] audit: type=1400", "2026-11-30T10:00:00"),
    ("Dec 31 23:00:00 host kernel: [ 1.2] x", "2025-12-31T23:00:00"),  # after the file's mtime: last year
    ("-- no time on this line --", None),
])
def test_when_a_log_begins(tmp_path, first, expect):
    from php_fpm_apparmor import auditlog

    log = tmp_path / "kern.log"
    log.write_text(first + "\nnext line\n")
    mtime = time.mktime(time.strptime("2026-12-01T12:00:00", "%Y-%m-%dT%H:%M:%S"))
    os.utime(log, (mtime, mtime))
    if isinstance(expect, str):
        expect = time.mktime(time.strptime(expect, "%Y-%m-%dT%H:%M:%S"))
    assert auditlog.first_time(log) == expect
    gz = tmp_path / "kern.log.2.gz"
    with gzip.open(gz, "wt") as f:
        f.write(first + "\n")
    os.utime(gz, (mtime, mtime))
    assert auditlog.first_time(gz) == expect


def test_enforce_if_quiet_on_a_pool_already_enforced(demo, cli):
    """Old ALLOWED lines of a pool already in enforce mode: said so, not "stays in complain"."""
    log = demo / "var/log/audit/audit.log"
    log.write_text(rec(1, "blog", "/srv/z/new.txt", st="ALLOWED", t=time.time() - 60) + "\n")
    st = json.loads(cli("--json", "status", root=demo).stdout)
    assert {r["pool"]: r["mode"] for r in st}["blog"] == "enforce"
    before = _mode(demo)
    proc = cli("enforce", "blog", "--if-quiet", "7", root=demo)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "pool blog is already in enforce mode"
    assert _mode(demo) == before


def test_status_reads_a_bounded_tail(demo, cli):
    log = demo / "var/log/audit/audit.log"
    old = rec(1, "cloud", "/etc/x", st="ALLOWED", t=T0)
    filler = rec(2, "blog", "/srv/y", t=T0 + 100) + "\n"
    with open(log, "w") as f:
        f.write(old + "\n")
        f.write(filler * (learn.STATUS_TAIL // len(filler) + 10))
    t = time.monotonic()
    st = json.loads(cli("--json", "status", root=demo).stdout)
    assert time.monotonic() - t < 30
    # the cloud event lies before the bounded window: status says "before", not a time it did not see
    assert {r["pool"]: r["quiet"] for r in st}["cloud"] == f"quiet since before {learn.when(T0 + 100)}"


def test_fast_judge_agrees_with_evaluate(demo):
    """Judge (one regex per permission) must answer exactly as evaluate.allows; the owner
    index as a walk over every other pool's paths."""
    plan = generate.plan(str(demo))
    probes = [p for _, p, _, _ in HELD_BACK] + [x for paths in OWNED.values() for x in paths] + [
        "/etc/passwd", "/etc/hosts", "/usr/share/zoneinfo/UTC", "/tmp/.ZendSem.x", "/dev/null",
        "/var/www/blog/wp-content/uploads/a b.png", "/var/www/blog/wp-content/uploads/x.php",
        '/var/www/blog/q"uote', "/proc/self/status", "/srv/nextcloud-data/.ocdata"]
    checked = 0
    tg = learn.targets(plan)
    for name in sorted(tg.owner):
        t = tg[name]
        for path in probes:
            # the owner index finds what a plain walk over every other pool's path finds
            brute = [o for o in t.owned if not o.root and evaluate.matches(o.pattern, path)]
            found = learn._owner(t, path)
            assert (found is not None) == bool(brute) or (found and found.root), (name, path)
            for perm, op in learn._OP.items():
                assert t.judge.allows(perm, path) == evaluate.allows(t.profile, op, path), (name, perm, path)
                checked += 1
    assert checked > 1000


def test_rotations_oldest_first_and_journal_copies_of_kern_log_skipped(tmp_path):
    from php_fpm_apparmor import auditlog

    log = tmp_path / "kern.log"
    for name in ("kern.log", "kern.log.1", "kern.log.2.gz", "kern.log.10.gz", "kern.log.old", "kern.logx"):
        (tmp_path / name).write_text("")
    assert [p.name for p in auditlog.rotated(log)] == ["kern.log.10.gz", "kern.log.2.gz", "kern.log.1", "kern.log"]
    c = auditlog.Counter()
    c.feed((rec(1, "a", "/x", form=KERN) + "\n" + rec(5, "a", "/x", form=KERN) + "\n").encode())
    span = c.span
    assert span == (b"%.3f" % (T0 + 1), b"%.3f" % (T0 + 5))
    # the journal's copy of those records (same times) is skipped, a later one is counted
    iso = "2025-11-29T07:10:00+0000 web1 kernel: audit: type=1400 "
    journal = "".join(iso + rec(n, "a", "/x").split("): ", 1)[0].replace("type=AVC msg=", "") + "): "
                      + rec(n, "a", "/x").split("): ", 1)[1] + "\n" for n in (1, 5, 9))
    c.feed(journal.encode(), skip=span)
    (seen,) = c.seen()
    assert (seen.count, seen.first, seen.last) == (3, T0 + 1, T0 + 9)


def test_since_forms():
    from php_fpm_apparmor import auditlog

    assert auditlog.parse_since("1764400000") == 1764400000.0
    assert abs(auditlog.parse_since("2d") - (time.time() - 2 * 86400)) < 5
    assert auditlog.parse_since("boot") <= time.time()
    assert auditlog.parse_since("2026-11-29 10:00") == time.mktime((2026, 11, 29, 10, 0, 0, 0, 0, -1))
    with pytest.raises(ValueError):
        auditlog.parse_since("last tuesday")


def test_a_glob_reaching_another_pool_falls_back_to_narrower_ones(demo, cli):
    conf = demo / "etc/php-fpm-apparmor/php-fpm-apparmor.conf"
    conf.write_text(conf.read_text().replace("[cloud]\n", "[cloud]\nwrite = /srv/shared/cloud-exports\n"))
    (demo / "srv/shared/cloud-exports").mkdir(parents=True)
    plan = generate.plan(str(demo))
    assert not plan.problems
    names = ["/srv/shared/a/x.png", "/srv/shared/a/y.png", "/srv/shared/b/z.png", "/srv/shared/b/w.png"]
    events = [learn.Event("DENIED", "open", "php-fpm//plain", n, "wc") for n in names]
    events.append(learn.Event("DENIED", "open", "php-fpm//plain", "/srv/shared/cloud-exports/x.png", "wc"))
    out = learn.propose(events, plan)
    # /srv/shared/**.png would reach cloud's exports: one *.png per directory instead
    assert out.rules == {"plain": ['"/srv/shared/a/*.png" w,', '"/srv/shared/b/*.png" w,']}
    assert [(w, y) for _, w, y, _ in out.refused] == [("w /srv/shared/cloud-exports/x.png",
                                                      "pool cloud's write = dir")]
    assert "pool cloud" in learn.glob_problem("/srv/shared/**.png", "w", learn.targets(plan)["plain"])


def test_auditd_enriched_format_and_hex_names():
    from php_fpm_apparmor import auditlog

    # auditd's default log_format = ENRICHED appends translated ids after a GS character
    enriched = rec(1, "a", "/var/www/a/x.png", "wc") + '\x1dFSUID="www-data" OUID="www-data"'
    hexed = rec(2, "a", "X").replace('name="X"', "name=" + "/var/www/a/a b.png".encode().hex().upper())
    c = auditlog.Counter()
    c.feed((enriched + "\n" + hexed + "\n").encode())
    assert sorted((s.event.name, s.event.requested) for s in c.seen()) == [
        ("/var/www/a/a b.png", "r"), ("/var/www/a/x.png", "wc")]

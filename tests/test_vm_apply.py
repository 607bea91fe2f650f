"""One pool's change applied alone, and a pool the parser refuses, in a real AppArmor kernel.

Four pools, their policy from the real CLI. Pool p2 is switched to complain: apply.apply()
on the host decides (with the kernel's list of loaded profiles as the VM shows it) to load
p2's profiles alone and hands over the file it would load; the VM loads exactly that file
next to the loaded parent. Only php-fpm//p2 is replaced (securityfs: each profile's
raw_data names the load it came from), the other pools' workers keep serving with the
same pids. A full reload of what is on disk afterwards yields the same modes (the disk
stays the truth; this kernel also leaves byte-identical profiles in place on a parent
reload, so what the load alone saves is the parser's time, not kernel churn). Then a pool
is added: apply() replaces the parent with the new pool's file and only the others'
parent-level rules, and the kernel keeps every other hat as loaded, workers and all. A
phase loads a policy generated with a plugin rule the parser refuses in p3: p3 keeps its
hat, the other pools still serve. The last loads what apply() hands over on a host big
enough to load in parts after the master's overrides changed: the parent with every
file's parent-level rules, then the hats in parts; every profile is there with its file's
mode, and the same workers serve.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from php_fpm_apparmor import apply as apply_mod, forked, generate, load, plugins as plugins_mod
from systree import make_tree, pool_conf
from test_apply import everything_loaded
from test_plugin_vm import REPO, vm

POOLS = ("p1", "p2", "p3", "p4")
NO_PLUGINS = plugins_mod.load(entry_points=[])
RAW = ("for d in /sys/kernel/security/apparmor/policy/profiles/*/ "
       "/sys/kernel/security/apparmor/policy/profiles/*/profiles/*/; "
       "do echo \"$(cat ${d}name) $(readlink ${d}raw_data)\"; done")
WORKERS = ("for p in /proc/[0-9]*; do l=$(cat $p/attr/current 2>/dev/null); "
           "case \"$l\" in php-fpm//*) echo \"${p#/proc/} $l\";; esac; done")
PROFILES = "cat /sys/kernel/security/apparmor/profiles"


def cli(tree: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "php_fpm_apparmor", "--root", str(tree), *args],
                          capture_output=True, text=True, timeout=300)


def set_mode(tree: Path, pool: str, mode: str) -> None:
    cfg = tree / "etc/php-fpm-apparmor/php-fpm-apparmor.conf"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text((cfg.read_text() if cfg.exists() else "") + f"\n[{pool}]\nmode = {mode}\n")


def full_policy(tree: Path, dest: Path) -> str:
    """The tree's installed policy as /policy/<name>/main for the VM (include rewritten)."""
    shutil.copytree(tree / "etc/apparmor.d/php-fpm.d", dest / "php-fpm.d")
    name = dest.name
    main = (tree / "etc/apparmor.d/php-fpm-apparmor").read_text()
    main = main.replace("include if exists <php-fpm.d>", f'include "/policy/{name}/php-fpm.d"')
    (dest / "main").write_text(main)
    return f"/policy/{name}/main"


def alone_file(tree: Path, kernel: dict, monkeypatch) -> tuple[str, object]:
    """What apply() loads into a kernel that holds `kernel`: the file it hands over."""
    sent = {}
    with monkeypatch.context() as m:
        m.setattr(load, "enabled", lambda sysroot="/": True)
        m.setattr(load, "loaded", lambda: dict(kernel))
        m.setattr(load, "replace_text", lambda text: sent.setdefault("alone", text) and None)
        m.setattr(load, "reload", lambda path: sent.setdefault("reload", path) and None)
        m.setattr(load, "unload", lambda names: None)
        m.setattr(load, "refresh_cache", lambda path: "not here")  # the booted systems refresh it
        out = apply_mod.apply(generate.plan(str(tree), NO_PLUGINS))
    assert "reload" not in sent and "alone" in sent, (out, sent)
    return sent["alone"], out


def staged_copy(args: list[str], dest: Path) -> str:
    """The staged main and php-fpm.d a parent load hands the parser (its last argument),
    copied to `dest` for the VM (include rewritten); the main's path in the VM."""
    stage = Path(args[-1]).parent
    shutil.copytree(stage / "php-fpm.d", dest / "php-fpm.d")
    main = Path(args[-1]).read_text()
    (dest / "main").write_text(main.replace("include if exists <php-fpm.d>", f'include "/policy/{dest.name}/php-fpm.d"'))
    return f"/policy/{dest.name}/main"


def parent_policy(tree: Path, kernel: dict, monkeypatch, dest: Path) -> tuple[str, object]:
    """What apply() loads when the parent's rules changed (a pool added): the staged main
    and php-fpm.d it hands the parser, copied to `dest` for the VM (include rewritten)."""
    sent = {}

    def run(args):
        if args[0] == "-R":
            return None
        staged_copy(args, dest)
        sent["parent"] = args
        return None

    with monkeypatch.context() as m:
        m.setattr(load, "enabled", lambda sysroot="/": True)
        m.setattr(load, "loaded", lambda: dict(kernel))
        m.setattr(load, "_run", run)
        m.setattr(load, "reload", lambda path, **k: sent.setdefault("reload", path) and None)
        m.setattr(load, "replace_text", lambda text: sent.setdefault("alone", text) and None)
        m.setattr(load, "refresh_cache", lambda path: "not here")  # the booted systems refresh it
        out = apply_mod.apply(generate.plan(str(tree), NO_PLUGINS))
    assert list(sent) == ["parent"], (out, sent)
    return f"/policy/{dest.name}/main", out


def parts_policy(tree: Path, kernel: dict, monkeypatch, dest: Path) -> tuple[list[str], object]:
    """What apply() loads, in order, when the master's overrides changed on a host big
    enough for parts (PART_MIN 1 here): the parent with every file's parent-level rules,
    then the hats as top-level profiles, one file per part; copied to `dest` for the VM."""
    sent = []

    def run(args):
        if args[0] == "-R":
            return None
        if "-I" in args:  # the parent, staged
            sent.append(staged_copy(args, dest))
        else:
            part = dest / Path(args[-1]).name  # (a unique temporary name: parts load side by side)
            part.write_text(Path(args[-1]).read_text())
            sent.append(f"/policy/{dest.name}/{part.name}")
        return None

    with monkeypatch.context() as m:
        m.setattr(apply_mod, "PART_MIN", 1)
        m.setattr(forked, "cpus", lambda: 2)
        m.setattr(load, "enabled", lambda sysroot="/": True)
        m.setattr(load, "loaded", lambda: dict(kernel))
        m.setattr(load, "_run", run)
        m.setattr(load, "reload", lambda path, **k: pytest.fail("the whole profile was loaded in one run"))
        m.setattr(load, "refresh_cache", lambda path: "not here")  # the booted systems refresh it
        out = apply_mod.apply(generate.plan(str(tree), NO_PLUGINS))
    return sent, out


def raw(phase) -> dict:
    # {full profile name: the load its blob came from}; securityfs names children by base name
    out = phase["shell"][RAW]["output"]
    pairs = (line.rsplit(" ", 1) for line in out.splitlines() if " " in line)
    return {(n if n == "php-fpm" else f"php-fpm//{n}"): r for n, r in pairs}


def workers(phase) -> dict:
    pids = {}
    for line in phase["shell"][WORKERS]["output"].splitlines():
        pid, label = line.split(" ", 1)
        pids.setdefault(label.split(" ")[0], set()).add(pid)
    return pids


@pytest.mark.vm
def test_one_pool_changed_is_loaded_alone_and_a_refused_pool_costs_only_itself(tmp_path, monkeypatch):
    harness = vm()
    tree = make_tree(tmp_path / "tree", {
        n: pool_conf(n, f"/var/www/{n}", hat=n).replace("pm = ondemand", "pm = static")
                                                .replace("pm.max_children = 5", "pm.max_children = 1")
        for n in POOLS})
    for n in POOLS:
        (tree / f"var/www/{n}/secret.txt").write_text(f"{n}'s secret\n")
    proc = cli(tree, "generate")
    assert proc.returncode == 0, proc.stderr
    (tree / "policy").mkdir()
    orig = full_policy(tree, tree / "policy/orig")
    before = {n: (tree / f"etc/apparmor.d/php-fpm.d/{n}").read_text() for n in POOLS}

    # p2 learns: only its hat's flags change. apply() sees a kernel holding every profile.
    set_mode(tree, "p2", "complain")
    kernel = {"php-fpm": "enforce", "php-fpm//_sh": "enforce", "php-fpm//_sendmail": "enforce",
              **{f"php-fpm//{n}": "enforce" for n in POOLS}}
    text, out = alone_file(tree, kernel, monkeypatch)
    assert out.hats_loaded == ["p2", "p2_sh"] and not out.reloaded and not out.problems
    assert "profile php-fpm//p2 flags=(attach_disconnected,complain) {" in text
    assert all(f"php-fpm//{n} " not in text for n in ("p1", "p3", "p4"))
    (tree / "policy/p2-alone").write_text(text)
    changed = full_policy(tree, tree / "policy/changed")
    # what is on disk after that apply: only p2's file differs
    for n in POOLS:
        same = (tree / f"etc/apparmor.d/php-fpm.d/{n}").read_text() == before[n]
        assert same == (n != "p2"), n
    work = tree

    # the master's overrides change on a host big enough for parts: the parent with every
    # file's parent-level rules, then every file's hats in parts (one parser run per core)
    big = tmp_path / "big"
    shutil.copytree(tree, big, symlinks=True)
    (big / "etc/apparmor.d/local").mkdir(parents=True, exist_ok=True)
    (big / "etc/apparmor.d/local/php-fpm").write_text("/srv/master-extra r,\n")
    (tree / "policy/parts").mkdir()
    in_parts, out = parts_policy(big, kernel, monkeypatch, tree / "policy/parts")
    assert out.reloaded and not out.problems and len(in_parts) == 3, (out, in_parts)
    assert "profile php-fpm//p1 " in "".join((tree / "policy/parts" / Path(f).name).read_text()
                                              for f in in_parts[1:])

    # p3 gets a plugin rule the parser refuses: p3 keeps its file, the rest is installed
    broken = tmp_path / "broken"
    shutil.copytree(work, broken, symlinks=True)
    set_mode(broken, "p4", "complain")
    out = apply_mod.apply(generate.plan(str(broken), _bad_in("p3")))
    assert len(out.problems) == 1 and "pool p3: apparmor_parser refused hat p3" in out.problems[0]
    assert "complain" in (broken / "etc/apparmor.d/php-fpm.d/p4").read_text()
    bad = full_policy(broken, tree / "policy/broken")

    # p5 arrives: its socket is the parent's, so the parent is replaced, with p5's file and
    # the others' parent-level rules only. Its pool file is gone again before the VM starts
    # php-fpm (only its hat is the point here; the tree's php-fpm runs the 4 pools).
    kernel = everything_loaded(work)
    p5 = work / "etc/php/8.2/fpm/pool.d/p5.conf"
    p5.write_text(pool_conf("p5", "/var/www/p5", hat="p5"))
    (work / "var/www/p5").mkdir(parents=True)
    (tree / "policy/added").mkdir()
    added, out = parent_policy(work, kernel, monkeypatch, tree / "policy/added")
    assert out.reloaded and {"p1", "p2", "p2_sh", "p3", "p4"} <= set(out.hats_kept) and not out.problems
    assert out.written == [str(work / "etc/apparmor.d/php-fpm.d/p5")]
    p5.unlink()

    shutil.rmtree(tree / "usr/sbin")  # make_tree's stand-in php-fpm8.2 would hide the real one

    def probe(pool, target, expect, why):
        return harness.Probe(pool=pool, socket=f"/run/php/{pool}.sock", script=f"/var/www/{pool}/probe.php",
                             op="read", target=target, expect=expect, why=why)

    def serve(p2_other="deny", p4_other="deny"):
        rows = []
        for n in POOLS:
            other = "p1" if n != "p1" else "p2"
            expect = {"p2": p2_other, "p4": p4_other}.get(n, "deny")
            rows += [probe(n, f"/var/www/{n}/secret.txt", "allow", "its own site"),
                     probe(n, f"/var/www/{other}/secret.txt", expect, "another pool's site")]
        return rows

    shell = [RAW, WORKERS, PROFILES]
    summary = harness.run(harness.Scenario(
        name="apply-alone", tree=str(tree),
        phases=[
            harness.Phase("all", load=[orig], probes=serve(), shell=shell),
            harness.Phase("alone", load=["/policy/p2-alone"], start_fpm=False,
                          probes=serve(p2_other="allow"), shell=shell),
            harness.Phase("reload", load=[changed], start_fpm=False, probes=serve(p2_other="allow"),
                          shell=shell),
            harness.Phase("added", load=[added], start_fpm=False, probes=serve(p2_other="allow"), shell=shell),
            harness.Phase("refused", load=[bad], start_fpm=False,
                          probes=serve(p2_other="allow", p4_other="allow"), shell=shell),
            harness.Phase("parts", load=in_parts, start_fpm=False, probes=serve(p2_other="allow"), shell=shell),
        ]), artefacts=str(REPO / "artifacts/vm"))
    assert summary["booted"] and summary["completed"], summary.get("warnings")
    phases = {p["name"]: p for p in summary["phases"]}
    for name, ph in phases.items():
        failed = [f"{r['pool']} {r['target']}: expect {r['expect']} ok={r['ok']} errno={r['errno']} "
                  f"label={r.get('label')}" for r in ph["results"] if not r.get("passed")]
        assert not failed, (name, failed, [c for c in ph["commands"] if c["kind"] == "load"])
        assert all(c["rc"] == 0 for c in ph["commands"] if c["kind"] == "load"), ph["commands"]

    # alone: php-fpm//p2 is a new load; the parent and every other profile are untouched
    first, alone, reload = raw(phases["all"]), raw(phases["alone"]), raw(phases["reload"])
    assert {"php-fpm", "php-fpm//p1", "php-fpm//p2", "php-fpm//_sh"} <= set(first), first
    assert alone["php-fpm//p2"] != first["php-fpm//p2"]
    p2 = ("php-fpm//p2", "php-fpm//p2_sh")
    assert {k: v for k, v in alone.items() if k not in p2} == {k: v for k, v in first.items() if k not in p2}
    assert "php-fpm//p2 (complain)" in phases["alone"]["shell"][PROFILES]["output"]
    assert "php-fpm//p1 (enforce)" in phases["alone"]["shell"][PROFILES]["output"]
    # the same workers served before and after, in their hats
    w1, w2 = workers(phases["all"]), workers(phases["alone"])
    for n in ("p1", "p3", "p4"):
        assert w1.get(f"php-fpm//{n}") and w1[f"php-fpm//{n}"] == w2.get(f"php-fpm//{n}"), (n, w1, w2)
    assert alone["php-fpm//p2_sh"] and "php-fpm//p2_sh" not in first  # its new child came with it
    # a full reload of what is on disk yields the same modes (the disk is the truth)
    assert reload.keys() == alone.keys()
    out = phases["reload"]["shell"][PROFILES]["output"]
    assert "php-fpm//p2 (complain)" in out and "php-fpm//p1 (enforce)" in out
    assert workers(phases["reload"]) == w2
    # p5 added: the parent and php-fpm//p5 are new loads; every other profile is the one
    # the full reload loaded (kept, not compiled again), and the same workers serve
    added = raw(phases["added"])
    assert added["php-fpm"] != reload["php-fpm"] and "php-fpm//p5" in added and "php-fpm//p5" not in reload
    assert {k: v for k, v in added.items() if k not in ("php-fpm", "php-fpm//p5")} == \
        {k: v for k, v in reload.items() if k != "php-fpm"}
    assert workers(phases["added"]) == w2
    out = phases["added"]["shell"][PROFILES]["output"]
    assert "php-fpm//p2 (complain)" in out and "php-fpm//p5 (enforce)" in out
    # the refused pool's hat stays, the others got their change
    out = phases["refused"]["shell"][PROFILES]["output"]
    assert "php-fpm//p3 (enforce)" in out and "php-fpm//p4 (complain)" in out
    # in parts: every profile the files define is loaded, with the files' modes (p4's hat,
    # complain before, replaced by its part), and the same workers serve in their hats
    refused, parts = raw(phases["refused"]), raw(phases["parts"])
    defined = {f"php-fpm//{p}" for f in (big / "etc/apparmor.d/php-fpm.d").iterdir()
               for p in apply_mod.split(f.read_text())[1]}
    assert defined | {"php-fpm"} <= parts.keys() and parts["php-fpm//p4"] != refused["php-fpm//p4"]
    out = phases["parts"]["shell"][PROFILES]["output"]
    assert "php-fpm//p2 (complain)" in out and "php-fpm//p4 (enforce)" in out and "php-fpm (enforce)" in out
    assert workers(phases["parts"]) == workers(phases["refused"]) and workers(phases["parts"])


def _bad_in(hat):
    from php_fpm_apparmor.apps import App
    from php_fpm_apparmor.hookspecs import hookimpl
    from php_fpm_apparmor.policy import FileRule, under

    class BadGlob:
        @hookimpl
        def php_fpm_apparmor_detect(site, found):
            return [App("badglob", site.roots[0], plugin="badglob")] if site.hat == hat else []

        @hookimpl
        def php_fpm_apparmor_rules(site, app):
            return [FileRule(path=under(app.root, "/cache/[A-Za-z0-9_-]"), perms="r", why="cache keys")]

    return plugins_mod.load(entry_points=[], extra=[BadGlob])

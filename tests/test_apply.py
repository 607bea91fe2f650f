"""The apply transaction on fake trees with the real apparmor_parser: one pool's failure is
that pool's alone; a hat changed alone is loadable alone."""

import json
import re
import subprocess
from pathlib import Path

import pytest

from php_fpm_apparmor import apply as apply_mod, forked, generate, install, plugins as plugins_mod, validate
from php_fpm_apparmor.apps import App
from php_fpm_apparmor.hookspecs import hookimpl
from php_fpm_apparmor.policy import FileRule, under
from systree import make_tree, pool_conf, snapshot

NO_PLUGINS = plugins_mod.load(entry_points=[])
pytestmark = pytest.mark.skipif(validate.parser() is None, reason="apparmor_parser not installed")


def three_pools(tmp_path):
    return make_tree(tmp_path, {n: pool_conf(n, f"/var/www/{n}", hat=n) for n in ("a", "b", "c")})


def everything_loaded(root) -> dict:
    """A kernel's profile list holding the parent and every profile the tree's files define."""
    return {"php-fpm": "enforce", **{f"php-fpm//{p}": "enforce" for f in (root / "etc/apparmor.d/php-fpm.d").iterdir()
                                     for p in apply_mod.split(f.read_text())[1]}}


def plugin(name, rules=None, for_hat="a"):
    """A third-party plugin that finds an app in pool `for_hat` and returns `rules(root)`."""

    class Plugin:
        @hookimpl
        def php_fpm_apparmor_detect(site, found):
            return [App(name, site.roots[0], plugin=name)] if site.hat == for_hat else []

        @hookimpl
        def php_fpm_apparmor_rules(site, app):
            return rules(app.root)

    Plugin.__name__ = name
    return plugins_mod.load(entry_points=[], extra=[Plugin])


# The parser refuses a class ending in '-' ("[A-Za-z0-9_-]"): issue 9 finding 1.
BAD_GLOB = plugin("badglob", lambda r: [FileRule(path=under(r, "/cache/[A-Za-z0-9_-]"), perms="r",
                                                 why="cache keys")])


def test_a_pool_the_parser_refuses_costs_that_pool_alone(tmp_path):
    root = three_pools(tmp_path)
    d = root / "etc/apparmor.d/php-fpm.d"
    out = apply_mod.apply(generate.plan(str(root), NO_PLUGINS))
    assert not out.problems and sorted(p.name for p in d.iterdir()) == ["_shared", "a", "b", "c"]
    old_a = (d / "a").read_bytes()
    (d / "c").unlink()  # c's file went missing: it must be written again
    (root / "etc/php/8.2/fpm/pool.d/b.conf").write_text(pool_conf("b", "/var/www/b", hat="b")
                                                        + "slowlog = /var/log/b.slow\n")
    out = apply_mod.apply(generate.plan(str(root), BAD_GLOB))
    # one line for a, naming the pool, the rule, the plugin and the parser's message
    [line] = out.problems
    assert "pool a: apparmor_parser refused hat a" in line, line
    assert 'rule `"/var/www/a/cache/[A-Za-z0-9_-]" r,`' in line and "badglob: cache keys" in line, line
    assert "ERROR" in line or "error" in line.lower(), line
    assert (d / "a").read_bytes() == old_a  # a keeps its previous, loaded hat
    assert (d / "c").exists() and "/var/log/b.slow" in (d / "b").read_text()  # the others go on
    assert validate.compile_file(str(root / "etc/apparmor.d/php-fpm-apparmor"),
                                 validate.search_dirs(str(root))) is None


def test_a_new_pool_the_parser_refuses_gets_its_core_only_hat(tmp_path, cli):
    root = three_pools(tmp_path)
    out = apply_mod.apply(generate.plan(str(root), BAD_GLOB))
    assert len(out.problems) == 1 and "pool a: apparmor_parser refused hat a" in out.problems[0]
    d = root / "etc/apparmor.d/php-fpm.d"
    a = (d / "a").read_text()
    assert generate.CORE_ONLY in a and "^a flags=" in a and "/var/www/a" not in a
    assert "/var/www/b/**" in (d / "b").read_text()
    # the whole profile, core-only hat included, compiles
    assert validate.compile_file(str(root / "etc/apparmor.d/php-fpm-apparmor"),
                                 validate.search_dirs(str(root))) is None
    # fixed: the next run gives a its real hat
    out = apply_mod.apply(generate.plan(str(root), NO_PLUGINS))
    assert not out.problems and "/var/www/a/**" in (d / "a").read_text()


def test_a_plugin_error_keeps_the_old_file_or_gives_the_core_only_hat(tmp_path):
    broken = plugin("returnsjunk", lambda r: ["not a rule"])
    root = three_pools(tmp_path)
    d = root / "etc/apparmor.d/php-fpm.d"
    result = generate.plan(str(root), broken)
    [e] = [e for e in result.entries if e.problem]
    assert e.pool.name == "a" and "plugin returnsjunk" in e.problem and e.fallback
    out = apply_mod.apply(result)
    assert any("plugin returnsjunk" in p for p in out.problems)
    assert generate.CORE_ONLY in (d / "a").read_text()
    # once a has its real hat, a broken plugin leaves it in place
    assert not apply_mod.apply(generate.plan(str(root), NO_PLUGINS)).problems
    before = snapshot(root)
    out = apply_mod.apply(generate.plan(str(root), broken))
    assert out.problems and snapshot(root) == before


def test_a_pool_without_any_root_gets_the_core_only_hat_and_the_rest_compiles(tmp_path, cli):
    root = make_tree(tmp_path, {"a": pool_conf("a", "/var/www/a", hat="a"),
                                "lost": pool_conf("lost", None, hat="lost")})
    proc = cli("generate", root=root)
    assert proc.returncode == 1
    assert "pool lost" in proc.stderr and "core-only hat" in proc.stderr
    text = (root / "etc/apparmor.d/php-fpm.d/lost").read_text()
    assert generate.CORE_ONLY in text and '"/run/php/lost.sock" rwkl,' in text  # its socket still works
    assert "include <abstractions/base>" in text and "/var/www" not in text


def test_only_the_changed_hat_is_compiled(tmp_path, monkeypatch):
    root = three_pools(tmp_path)
    assert not apply_mod.apply(generate.plan(str(root), NO_PLUGINS)).problems
    compiled = []
    real = validate.compile_file
    monkeypatch.setattr(validate, "compile_file", lambda path, inc, **k: compiled.append(path) or real(path, inc, **k))
    cfg = root / "etc/php-fpm-apparmor/php-fpm-apparmor.conf"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("[b]\nmode = complain\n")
    out = apply_mod.apply(generate.plan(str(root), NO_PLUGINS))
    assert not out.problems and [p.rsplit("/", 1)[1] for p in compiled] == ["b.wrapper"]
    assert "^b flags=(attach_disconnected,complain)" in (root / "etc/apparmor.d/php-fpm.d/b").read_text()


def test_split_and_standalone_hats_compile_alone_under_their_full_names(tmp_path):
    webp = plugin("helper", lambda r: [], for_hat="a")
    root = three_pools(tmp_path)
    result = generate.plan(str(root), webp)
    a = next(e for e in result.entries if e.hat == "a")
    master, blocks = apply_mod.split(a.text)
    assert '"/run/php/a.sock" rwkl,' in master and list(blocks) == ["a"]
    main_text = apply_mod.template()
    text = apply_mod.standalone(main_text, [a.text])
    assert "profile php-fpm//a flags=(attach_disconnected) {" in text and "^a" not in text
    f = tmp_path / "alone"
    f.write_text(text)
    names = subprocess.run([validate.parser(), "-Q", "-K", "-N", "-M", validate.FEATURES,
                            "-I", str(root / "etc/apparmor.d"), "-I", "/etc/apparmor.d", str(f)],
                           capture_output=True, text=True)
    assert names.returncode == 0, names.stderr
    assert names.stdout.split() == ["php-fpm//a"]
    # a parent-level change is seen as one: the socket moved
    moved = a.text.replace("/run/php/a.sock", "/run/php/a2.sock")
    assert apply_mod.split(moved)[0] != master


def test_a_big_profile_is_compiled_in_parts_with_the_verdict_of_the_whole(tmp_path, monkeypatch):
    """Parts side by side (the parent, then the hats as top-level profiles, one run per
    core) say what one run over the whole says: it compiles; a hat's bad rule, or a parent
    rule of one file, refuses it. A name defined twice, or a block that never closes, is
    the whole's to judge, in one run."""
    root = make_tree(tmp_path, {n: pool_conf(n, f"/var/www/{n}", hat=n) for n in "abcdef"})
    monkeypatch.setattr(apply_mod, "PART_MIN", 2)
    monkeypatch.setattr(forked, "cpus", lambda: 3)
    runs = []
    real = validate.compile_file
    monkeypatch.setattr(validate, "compile_file", lambda path, inc, **k: runs.append(Path(path).read_text())
                        or real(path, inc, **k))
    assert not apply_mod.apply(generate.plan(str(root), NO_PLUGINS)).problems
    assert len(runs) == 4 and "profile php-fpm//a " in "".join(runs), runs  # the transaction's whole
    files = {f.name: f.read_text() for f in (root / "etc/apparmor.d/php-fpm.d").iterdir()}
    includes, main_text = validate.search_dirs(str(root)), apply_mod.template()

    def verdicts(files, parts=True):
        runs.clear()
        got = apply_mod._compile_whole(main_text, files, includes, parts=parts)
        ran = len(runs)
        return got, ran, apply_mod._compile_whole(main_text, files, includes, parts=False)

    error, ran, whole = verdicts(files)
    assert error is None and whole is None and ran == 4, runs
    # each hat in exactly one part, under its full name; the parent holds every socket
    assert sorted(p for t in runs for p in re.findall(r"^profile php-fpm//(\S+)", t, re.M)) == \
        sorted(["_sh", "_sendmail", *"abcdef"])
    bad = files["c"].replace("  }", '    "/var/www/c/cache/[A-Za-z0-9_-]" r,\n  }', 1)
    error, ran, whole = verdicts({**files, "c": bad})
    assert error and whole and ran == 4, error
    bad = files["d"].replace("\n  ^d", '\n"/run/x[" rw,\n  ^d', 1)
    error, ran, whole = verdicts({**files, "d": bad})
    assert error and whole and ran == 4, error
    twice = files["a"].replace("php-fpm.d/a", "php-fpm.d/z")  # a second file defining ^a
    error, ran, whole = verdicts({**files, "z": twice})
    assert error and whole and ran == 1, error
    unclosed = files["e"].rstrip("\n").rsplit("\n", 1)[0] + "\n"
    assert not apply_mod._split(unclosed)[2]
    error, ran, whole = verdicts({**files, "e": unclosed})
    assert ran == 1 and (error is None) == (whole is None)
    error, ran, whole = verdicts(files, parts=False)
    assert error is None and ran == 1
    # the admin's own file in php-fpm.d: the transaction compiles the whole in one run
    (root / "etc/apparmor.d/php-fpm.d/mine").write_text("  ^mine {\n  }\n")
    cfg = root / "etc/php-fpm-apparmor/php-fpm-apparmor.conf"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("[b]\nmode = complain\n")
    runs.clear()
    out = apply_mod.apply(generate.plan(str(root), NO_PLUGINS))
    assert not out.problems and len(runs) == 1, (out.problems, len(runs))


def test_installed_files_compile_in_the_stock_profile_too(tmp_path):
    root = three_pools(tmp_path)
    stock = root / "etc/apparmor.d/php-fpm"
    stock.write_text("abi <abi/3.0>,\ninclude <tunables/global>\nprofile php-fpm /usr/sbin/php-fpm* {\n"
                     "  include <abstractions/base>\n  include if exists <php-fpm.d>\n}\n")
    out = apply_mod.apply(generate.plan(str(root), BAD_GLOB))
    assert len(out.problems) == 1
    assert sorted(install.ours(str(root))) == ["_shared", "a", "b", "c"]
    assert validate.compile_file(str(stock), validate.search_dirs(str(root))) is None


def test_only_one_pool_is_planned_and_the_others_keep_their_files(tmp_path, cli):
    root = three_pools(tmp_path)
    d = root / "etc/apparmor.d/php-fpm.d"
    assert not apply_mod.apply(generate.plan(str(root), NO_PLUGINS)).problems
    before = {n: (d / n).stat().st_mtime_ns for n in ("a", "c")}
    # a plugin that would break a is never asked about a: only b is planned
    calls = []
    watching = plugin("watch", lambda r: calls.append(r) or ["not a rule"], for_hat="a")
    cfg = root / "etc/php-fpm-apparmor/php-fpm-apparmor.conf"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("[b]\nmode = complain\n")
    result = generate.plan(str(root), watching, only=["b"])
    assert [e.hat for e in result.entries if e.keep] == ["a", "c"] and not calls
    out = apply_mod.apply(result)
    assert not out.problems and [p.rsplit("/", 1)[1] for p in out.written] == ["b"]
    assert {n: (d / n).stat().st_mtime_ns for n in ("a", "c")} == before
    # the planned pool is still checked against the kept pools' roots
    reach = plugin("reach", lambda r: [FileRule(path="/var/www/a/**", perms="r", why="peek")], for_hat="b")
    result = generate.plan(str(root), reach, only=["b"])
    [e] = [e for e in result.entries if e.problem]
    assert e.hat == "b" and "reaches pool a's root /var/www/a" in e.problem
    # the CLI: complain/enforce re-plan the one pool they change
    proc = cli("enforce", "b", root=root)
    assert proc.returncode == 0, proc.stderr
    assert "complain" not in (d / "b").read_text() and {n: (d / n).stat().st_mtime_ns for n in ("a", "c")} == before
    proc = cli("generate", "--pool", "c", "--dry-run", root=root)
    assert proc.returncode == 0, proc.stderr


def test_a_pool_added_or_removed_replaces_the_parent_and_keeps_the_other_loaded_hats(tmp_path, monkeypatch):
    """A new pool's socket is the parent's: the parent is replaced, with the new pool's file
    and only the parent-level rules of the others (their loaded hats stay: the kernel keeps
    the children a replaced parent does not define), so one pool added to a thousand does
    not compile a thousand hats again. The real parser compiles here what would be loaded;
    tests/test_vm_apply.py loads it into a real kernel."""
    from php_fpm_apparmor import load

    root = three_pools(tmp_path)
    d = root / "etc/apparmor.d/php-fpm.d"
    assert not apply_mod.apply(generate.plan(str(root), NO_PLUGINS)).problems
    kernel = everything_loaded(root)
    assert {"php-fpm//a", "php-fpm//c", "php-fpm//_sh"} <= set(kernel)
    # pool d arrives, pool c goes
    pool_d = root / "etc/php/8.2/fpm/pool.d"
    (pool_d / "d.conf").write_text(pool_conf("d", "/var/www/d", hat="d"))
    (root / "var/www/d").mkdir(parents=True)
    (pool_d / "c.conf").unlink()
    loads, removed = [], []

    def run(args):  # the parser as load.py runs it, compiling instead of loading
        if args[0] == "-R":
            removed.extend(re.findall(r"profile php-fpm//(\S+) ", Path(args[1]).read_text()))
            return None
        assert args[:2] == ["-r", "-T"] and "-W" not in args, args  # no cache from a partial text
        staged = Path(args[-1]).parent / "php-fpm.d"
        names = subprocess.run([validate.parser(), "-Q", "-K", "-N", "-M", validate.FEATURES, *args[2:]],
                               capture_output=True, text=True)
        assert names.returncode == 0, names.stderr
        loads.append((sorted(names.stdout.split()), {f.name: f.read_text() for f in staged.iterdir()}))
        return None

    monkeypatch.setattr(load, "enabled", lambda sysroot="/": True)
    monkeypatch.setattr(load, "loaded", lambda: dict(kernel))
    monkeypatch.setattr(load, "_run", run)
    monkeypatch.setattr(load, "reload", lambda *a, **k: pytest.fail("the whole profile was compiled"))
    refreshed = []
    monkeypatch.setattr(load, "refresh_cache", lambda path: refreshed.append(path) or "refreshing")
    out = apply_mod.apply(generate.plan(str(root), NO_PLUGINS))
    assert not out.problems and out.reloaded and out.removed == [str(d / "c")], out
    # the boot-time cache was not written from the partial text: it is refreshed from the files
    assert refreshed == [str(root / "etc/apparmor.d/php-fpm-apparmor")] and out.cache == "refreshing"
    [(names, staged)] = loads
    assert names == ["php-fpm", "php-fpm//d"]  # the parent and the new hat: nothing else compiled
    assert sorted(staged) == ["_shared", "a", "b", "d"] and '"/run/php/a.sock" rwkl,' in staged["a"]
    assert "^a" not in staged["a"] and staged["d"] == (d / "d").read_text()
    assert {"a", "b", "_sh"} <= set(out.hats_kept) and "d" not in out.hats_kept
    assert removed == ["c"]
    # on disk, the whole truth: every hat in full, and it compiles as one profile
    assert "^a" in (d / "a").read_text() and not (d / "c").exists()
    main = root / "etc/apparmor.d/php-fpm-apparmor"
    assert validate.compile_file(str(main), validate.search_dirs(str(root))) is None


def loading_in_parts(monkeypatch, kernel: dict) -> list:
    """A live system whose kernel holds `kernel`, loads in parts from 6 files (PART_MIN 2,
    3 cores), no whole reload; the parser runs as load.py makes them, compiling (-N)
    instead of loading: [("parent" or "part", profile names, the parent's staged files)]."""
    from php_fpm_apparmor import load

    calls = []

    def run(args):
        assert args[:2] == ["-r", "-T"] and "-W" not in args, args  # no cache from a partial text
        names = subprocess.run([validate.parser(), "-Q", "-K", "-N", "-M", validate.FEATURES, *args[2:]],
                               capture_output=True, text=True)
        assert names.returncode == 0, names.stderr
        staged = Path(args[-1]).parent / "php-fpm.d"
        calls.append(("parent" if "-I" in args else "part", names.stdout.split(),
                      {f.name: f.read_text() for f in staged.iterdir()} if "-I" in args else {}))
        return None

    monkeypatch.setattr(apply_mod, "PART_MIN", 2)
    monkeypatch.setattr(forked, "cpus", lambda: 3)
    monkeypatch.setattr(load, "enabled", lambda sysroot="/": True)
    monkeypatch.setattr(load, "loaded", lambda: dict(kernel))
    monkeypatch.setattr(load, "_run", run)
    monkeypatch.setattr(load, "reload", lambda *a, **k: pytest.fail("the whole profile was compiled in one run"))
    monkeypatch.setattr(load, "refresh_cache", lambda path: "refreshing")
    return calls


def test_many_hats_changed_alone_load_in_parts_one_parser_per_core(tmp_path, monkeypatch):
    """Every pool's hat changed, the parent's rules not (a package upgrade, every pool to
    complain): the hats load next to the loaded parent in parts side by side, each profile
    in exactly one part, and nothing is reloaded whole. The real parser compiles each part
    here; a part's load is the one-pool load tests/test_vm_apply.py runs in a real kernel."""
    pools = "abcdef"
    root = make_tree(tmp_path, {n: pool_conf(n, f"/var/www/{n}", hat=n) for n in pools})
    assert not apply_mod.apply(generate.plan(str(root), NO_PLUGINS)).problems
    cfg = root / "etc/php-fpm-apparmor/php-fpm-apparmor.conf"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("".join(f"[{n}]\nmode = complain\n" for n in pools))
    calls = loading_in_parts(monkeypatch, everything_loaded(root))
    out = apply_mod.apply(generate.plan(str(root), NO_PLUGINS))
    profiles = sorted(p for n in pools for p in apply_mod.split((root / f"etc/apparmor.d/php-fpm.d/{n}").read_text())[1])
    assert set(pools) < set(profiles) and "complain" in (root / "etc/apparmor.d/php-fpm.d/f").read_text()
    assert not out.problems and not out.reloaded and out.hats_loaded == profiles, out
    assert [h for h, _, _ in calls] == ["part"] * 3, calls  # no parent
    assert sorted(n for _, names, _ in calls for n in names) == [f"php-fpm//{p}" for p in profiles]


def test_a_big_parent_change_loads_the_parent_then_the_hats_in_parts(tmp_path, monkeypatch):
    """Every pool's socket moved (a PHP upgrade), then the master's overrides edited: the
    parent is replaced with every file's parent-level rules only (the loaded hats kept),
    then the changed files' hats (every file's, for the master's overrides) load in parts,
    one parser run per core; the boot-time cache is refreshed after. With no parent loaded
    (a first load) the whole profile is one load: no worker may start before its hat."""
    from php_fpm_apparmor import load

    pools = "abcdef"
    root = make_tree(tmp_path, {n: pool_conf(n, f"/var/www/{n}", hat=n) for n in pools})
    d = root / "etc/apparmor.d/php-fpm.d"
    assert not apply_mod.apply(generate.plan(str(root), NO_PLUGINS)).problems
    kernel = everything_loaded(root)
    for n in pools:
        conf = root / f"etc/php/8.2/fpm/pool.d/{n}.conf"
        conf.write_text(conf.read_text().replace(f"/run/php/{n}.sock", f"/run/php/{n}-84.sock"))
    calls = loading_in_parts(monkeypatch, kernel)

    def profiles(names):
        return sorted(f"php-fpm//{p}" for n in names for p in apply_mod.split((d / n).read_text())[1])

    out = apply_mod.apply(generate.plan(str(root), NO_PLUGINS))
    assert not out.problems and out.reloaded and out.cache == "refreshing", out
    assert sorted(out.written) == [str(d / n) for n in pools] and "/run/php/a-84.sock" in (d / "a").read_text()
    (how, names, staged), *parts = calls
    assert how == "parent" and names == ["php-fpm"] and sorted(staged) == ["_shared", *pools]
    assert '"/run/php/a-84.sock" rwkl,' in staged["a"] and not any("^" in t for t in staged.values())
    assert [h for h, _, _ in parts] == ["part"] * 3
    assert sorted(p for _, names, _ in parts for p in names) == profiles(pools)
    assert set(out.hats_kept) == {"_sh", "_sendmail"}  # the shared file's, unchanged
    # the master's overrides: every file's hats after the parent
    calls.clear()
    local = root / "etc/apparmor.d/local"
    local.mkdir(parents=True, exist_ok=True)
    (local / "php-fpm").write_text("/srv/master-extra r,\n")
    out = apply_mod.apply(generate.plan(str(root), NO_PLUGINS))
    assert not out.problems and out.reloaded and out.written == [], out
    (how, names, staged), *parts = calls
    assert how == "parent" and sorted(staged) == ["_shared", *pools] and len(parts) == 3
    assert sorted(p for _, names, _ in parts for p in names) == profiles(["_shared", *pools])
    # no parent loaded: one load of the whole
    kernel.clear()
    (local / "php-fpm").write_text("/srv/master-extra2 r,\n")
    reloads = []
    monkeypatch.setattr(load, "reload", lambda path, **k: reloads.append(path) and None)
    calls.clear()
    out = apply_mod.apply(generate.plan(str(root), NO_PLUGINS))
    assert not out.problems and out.reloaded and reloads == [str(root / "etc/apparmor.d/php-fpm-apparmor")]
    assert calls == []


def test_one_hats_local_overrides_are_that_hats_change_alone(tmp_path, monkeypatch, cli):
    """`learn --write` appends to one pool's /etc/apparmor.d/local/php-fpm.d/<hat>: that hat
    is compiled and loaded alone (it compiled and reloaded every hat before: a minute per
    thousand pools). A broken one costs that hat its overrides (left out of its file), not
    the other pools their changes; the master's overrides still reload the whole profile."""
    from php_fpm_apparmor import load

    root = three_pools(tmp_path)
    assert not apply_mod.apply(generate.plan(str(root), NO_PLUGINS)).problems
    kernel = everything_loaded(root)
    sent, compiled = [], []
    real = validate.compile_file
    monkeypatch.setattr(validate, "compile_file", lambda path, inc, **k: compiled.append(Path(path).name)
                        or real(path, inc, **k))
    monkeypatch.setattr(load, "enabled", lambda sysroot="/": True)
    monkeypatch.setattr(load, "loaded", lambda: dict(kernel))
    monkeypatch.setattr(load, "replace_text", lambda text: sent.append(("alone", text)) and None)
    monkeypatch.setattr(load, "reload", lambda path, **k: sent.append(("whole", path)) and None)
    monkeypatch.setattr(load, "refresh_cache", lambda path: "refreshing")
    local = root / "etc/apparmor.d/local/php-fpm.d"
    local.mkdir(parents=True)
    (local / "b").write_text("/srv/b-extra/** r,\n")
    out = apply_mod.apply(generate.plan(str(root), NO_PLUGINS))
    assert not out.problems and out.hats_loaded == ["b"] and compiled == ["b.wrapper"], (out, compiled)
    [(how, text)] = sent
    assert how == "alone" and "profile php-fpm//b " in text and "php-fpm//a " not in text
    assert "include if exists <local/php-fpm.d/b>" in text and out.written == []
    state = (root / install.STATE.lstrip("/")).read_text()
    assert re.search(r"^[0-9a-f]{64}  php-fpm\.d/b$", state, re.M), state
    # nothing changed since: nothing compiled or loaded
    sent.clear(), compiled.clear()
    assert not apply_mod.apply(generate.plan(str(root), NO_PLUGINS)).problems and not sent and not compiled
    # what no file includes is no policy: the package's README, an editor's backup
    (local / "README").write_text("Site-specific additions, one file per hat.\n")
    (local / "b~").write_text("/srv/b-extra/** r,\n")
    assert not apply_mod.apply(generate.plan(str(root), NO_PLUGINS)).problems and not sent and not compiled
    # a child's override is the change of the file that includes it alone (the shared sh
    # child's: its file, loaded with the parent, the hats kept; it was the whole profile)
    monkeypatch.setattr(load, "replace_parent", lambda main, files, inc: sent.append(("parent", files)) and None)
    (local / "_sh").write_text("/srv/tools/** r,\n")
    out = apply_mod.apply(generate.plan(str(root), NO_PLUGINS))
    assert not out.problems and compiled == ["_shared.wrapper"] and [h for h, _ in sent] == ["parent"], (out, sent)
    assert "include if exists <local/php-fpm.d/_sh>" in sent[0][1]["_shared"] and "^a " not in sent[0][1]["a"]
    sent.clear(), compiled.clear()
    # a typo in c's: it costs c its overrides, not every pool its changes. c's file is
    # installed without them (so the whole profile, the next boot, compiles) and loaded
    # alone; a pool changed meanwhile is installed too; every run says so until it is fixed
    d = root / "etc/apparmor.d/php-fpm.d"
    (local / "c").write_text("/srv/c-more/** r,\n/srv/c-extra/** rz,\n")
    conf = root / "etc/php/8.2/fpm/pool.d/a.conf"
    conf.write_text(conf.read_text().replace("chdir = /var/www/a", "chdir = /var/www/a/x"))
    (root / "var/www/a/x").mkdir()
    sent.clear()
    out = apply_mod.apply(generate.plan(str(root), NO_PLUGINS))
    [problem] = out.problems
    assert f"pool c: {local / 'c'}:2: syntax error" in problem, problem  # the admin's file and line
    assert problem.endswith("the local overrides of c left out, its hat runs without them until they compile")
    assert out.left_out == ["c"] and not out.refused and out.written == [str(d / "a"), str(d / "c")], out
    assert [h for h, _ in sent] == ["alone"] and out.hats_loaded == ["a", "c"], sent
    assert "<local/php-fpm.d/c>" not in sent[0][1] and "<local/php-fpm.d/a>" in sent[0][1]
    assert "<local/php-fpm.d/c>" not in (d / "c").read_text() and "/var/www/a/x" in (d / "a").read_text()
    main = root / "etc/apparmor.d/php-fpm-apparmor"
    assert validate.compile_file(str(main), validate.search_dirs(str(root))) is None  # a boot loads it
    rows = {r["hat"]: r for r in json.loads(cli("--json", "status", root=root).stdout)}
    assert "local overrides left out" in rows["c"]["problem"] and not rows["b"]["problem"], rows
    sent.clear(), compiled.clear()
    out = apply_mod.apply(generate.plan(str(root), NO_PLUGINS))
    # said again, not compiled again (a host with many broken overrides: every run)
    [problem] = out.problems
    assert f"pool c: {local / 'c'}: unchanged since an earlier run found it does not compile" in problem, problem
    assert "the local overrides of c left out" in problem and out.left_out == ["c"]
    assert not sent and not out.written and not compiled, (out, compiled)
    # a rule without its comma at the end is reported at the hat's end: the file is named
    (local / "c").write_text("/srv/c-extra/** r\n")
    out = apply_mod.apply(generate.plan(str(root), NO_PLUGINS))
    assert f"pool c: {local / 'c'}: syntax error" in out.problems[0] and out.left_out == ["c"], out
    # fixed: c has its overrides again, loaded alone
    (local / "c").write_text("/srv/c-extra/** r,\n")
    out = apply_mod.apply(generate.plan(str(root), NO_PLUGINS))
    assert not out.problems and out.written == [str(d / "c")] and out.hats_loaded == ["c"], out
    assert "include if exists <local/php-fpm.d/c>" in (d / "c").read_text()
    # the master's own overrides: the whole profile
    (local / "c").unlink()
    sent.clear()
    (root / "etc/apparmor.d/local/php-fpm").write_text("/srv/master r,\n")
    out = apply_mod.apply(generate.plan(str(root), NO_PLUGINS))
    assert not out.problems and [h for h, _ in sent] == ["whole"], (out, sent)


def test_a_broken_override_at_boot_leaves_every_pool_its_hat(tmp_path, monkeypatch):
    """A typo in one pool's override left at a boot: apparmor.service cannot compile the
    php-fpm profile, so the kernel has none. No pool would have its hat and php-fpm would
    not start, every site down for one typo. generate installs that pool's file without
    its overrides, so the profile on disk compiles, and loads it whole."""
    from php_fpm_apparmor import load

    root = three_pools(tmp_path)
    assert not apply_mod.apply(generate.plan(str(root), NO_PLUGINS)).problems
    local = root / "etc/apparmor.d/local/php-fpm.d"
    local.mkdir(parents=True)
    (local / "c").write_text("/srv/c-extra/** r\n")  # no comma
    main = root / "etc/apparmor.d/php-fpm-apparmor"
    includes = validate.search_dirs(str(root))
    assert validate.compile_file(str(main), includes)  # what apparmor.service met at boot
    loads = []

    def reload(path, use_cache=False):  # the parser run, compiling the files on disk instead of loading
        names = subprocess.run([validate.parser(), "-Q", "-K", "-N", "-M", validate.FEATURES,
                                *[a for d in includes for a in ("-I", d)], path], capture_output=True, text=True)
        assert names.returncode == 0, names.stderr
        loads.append(sorted(names.stdout.split()))

    monkeypatch.setattr(load, "enabled", lambda sysroot="/": True)
    monkeypatch.setattr(load, "reload", reload)
    monkeypatch.setattr(load, "loaded", lambda: {"php-fpm//a": "enforce"})  # no parent
    out = apply_mod.apply(generate.plan(str(root), NO_PLUGINS))
    [problem] = out.problems
    assert "pool c: " in problem and "the local overrides of c left out" in problem, problem
    assert out.reloaded and loads and {"php-fpm", "php-fpm//a", "php-fpm//b", "php-fpm//c"} <= set(loads[0])
    d = root / "etc/apparmor.d/php-fpm.d"
    assert "<local/php-fpm.d/c>" not in (d / "c").read_text() and "<local/php-fpm.d/a>" in (d / "a").read_text()


def test_a_refused_override_with_no_profile_loaded_is_left_out_of_the_load(tmp_path, monkeypatch):
    """An override that must not be left out (learn's, just written: learn takes it back)
    is refused and nothing is installed. If the kernel has no php-fpm profile meanwhile,
    the installed files are loaded with that pool's overrides left out, so every pool has
    its hat; the files stay as they are."""
    from php_fpm_apparmor import load

    root = three_pools(tmp_path)
    assert not apply_mod.apply(generate.plan(str(root), NO_PLUGINS)).problems
    local = root / "etc/apparmor.d/local/php-fpm.d"
    local.mkdir(parents=True)
    (local / "c").write_text("/srv/c-extra/** r\n")  # no comma
    before = snapshot(root)
    loads = []

    def run(args):  # as load.py runs the parser, compiling instead of loading
        names = subprocess.run([validate.parser(), "-Q", "-K", "-N", "-M", validate.FEATURES, *args[2:]],
                               capture_output=True, text=True)
        assert args[:2] == ["-r", "-T"] and names.returncode == 0, (args, names.stderr)
        staged = Path(args[-1]).parent / "php-fpm.d"
        loads.append((sorted(names.stdout.split()), {f.name: f.read_text() for f in staged.iterdir()}))

    monkeypatch.setattr(load, "enabled", lambda sysroot="/": True)
    monkeypatch.setattr(load, "_run", run)
    monkeypatch.setattr(load, "reload", lambda *a, **k: pytest.fail("the whole profile cannot compile"))
    monkeypatch.setattr(load, "loaded", lambda: {"php-fpm//a": "enforce"})  # no parent: the rescue
    learned = frozenset({"c"})
    out = apply_mod.apply(generate.plan(str(root), NO_PLUGINS), wrote_overrides=learned)
    assert "pool c: apparmor_parser refused hat c" in out.problems[0] and out.refused == ["c"]
    assert "nothing was changed" in out.problems[1]
    assert "loaded the installed one with the local overrides of c left out" in out.problems[2], out.problems
    [(names, staged)] = loads
    assert {"php-fpm", "php-fpm//a", "php-fpm//b", "php-fpm//c"} <= set(names)
    assert "<local/php-fpm.d/c>" not in staged["c"] and "<local/php-fpm.d/a>" in staged["a"]
    assert snapshot(root) == before  # the files stay: learn takes its rules back
    # the parent loaded (a running system): nothing is loaded, the hats in the kernel stay
    loads.clear()
    monkeypatch.setattr(load, "loaded", lambda: {"php-fpm": "enforce", "php-fpm//a": "enforce"})
    out = apply_mod.apply(generate.plan(str(root), NO_PLUGINS), wrote_overrides=learned)
    assert len(out.problems) == 2 and not loads


def test_the_cache_refresh_runs_the_parser_in_one_transient_unit(tmp_path, monkeypatch):
    """The refresh outlives the run that starts it (a oneshot unit's leftovers are killed),
    writes the cache from the files on disk, and is one unit at a time that compiles again
    while loads keep coming: the real command line, run by a stand-in systemd-run that
    records it, with a parser that writes its cache under tmp_path (a test must not write
    the machine's)."""
    from php_fpm_apparmor import load

    profile = tmp_path / "t"
    profile.write_text("abi <abi/3.0>,\nprofile t /usr/bin/t {\n  /etc/t r,\n}\n")
    cache = tmp_path / "cache"
    cache.mkdir()
    aa = tmp_path / "apparmor_parser"
    aa.write_text(f'#!/bin/sh\necho run >> {tmp_path}/runs\n'
                  f'exec {validate.parser()} --cache-loc {cache} -M {validate.FEATURES} "$@"\n')
    fake = tmp_path / "systemd-run"
    fake.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/args\n"
                    "while [ \"${1#-}\" != \"$1\" ]; do [ \"$1\" = -p ] && shift; shift; done\n"
                    'exec "$@"\n')
    for f in (aa, fake):
        f.chmod(0o755)
    monkeypatch.setattr(load, "parser", lambda: str(aa))
    monkeypatch.setattr(load.shutil, "which", lambda name: str(fake) if name == "systemd-run" else None)
    monkeypatch.setattr(load, "CACHE_STALE", str(tmp_path / "state/cache-stale"))
    real_is_dir = Path.is_dir
    monkeypatch.setattr(Path, "is_dir", lambda p: True if str(p) == "/run/systemd/system" else real_is_dir(p))
    assert load.refresh_cache(str(profile)) == "refreshing in php-fpm-apparmor-cache.service"
    args = (tmp_path / "args").read_text().split()
    assert "--no-block" in args and "--collect" in args and "--unit=php-fpm-apparmor-cache" in args
    assert args[-3:] == [str(tmp_path / "state/cache-stale"), str(aa), str(profile)], args
    assert not (tmp_path / "state/cache-stale").exists()  # the flag is taken by the compile
    assert (tmp_path / "runs").read_text() == "run\n"
    hit = subprocess.run([str(aa), "-Q", "-k", str(profile)], capture_output=True, text=True)
    assert "Cache hit" in hit.stderr, hit.stderr
    # no systemd: nothing started, and it says so
    monkeypatch.setattr(load.shutil, "which", lambda name: None)
    assert "not refreshed" in load.refresh_cache(str(profile))


def test_status_only_reads(tmp_path, monkeypatch, capsys):
    from php_fpm_apparmor import cli, invariants, policy
    root = three_pools(tmp_path)
    assert not apply_mod.apply(generate.plan(str(root), NO_PLUGINS)).problems

    def forbidden(*a, **k):
        raise AssertionError("status must not build, check or compile policy")
    for mod, name in ((validate, "compile_file"), (invariants, "check_plan"), (policy, "build"),
                      (apply_mod, "apply")):
        monkeypatch.setattr(mod, name, forbidden)
    assert cli.main(["--root", str(root), "--json", "status"]) == 0
    rows = {r["pool"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["a"]["hat"] == "a" and rows["a"]["file"].endswith("php-fpm.d/a")
    assert rows["a"]["installed_mode"] == "enforce" and rows["a"]["site_root"] == ["/var/www/a"]


def test_status_says_how_many_pools_have_no_hat_file(tmp_path, capsys):
    """The text has no file column: before generate, and for a pool added since, one line
    says how many pools have no hat file and what writes them; none once all have one."""
    from php_fpm_apparmor import cli
    root = three_pools(tmp_path)
    assert cli.main(["--root", str(root), "status"]) == 0
    notes = [l for l in capsys.readouterr().out.splitlines() if "no hat file installed" in l]
    assert notes and notes[0].startswith("note: 3 of 3 pool(s)") and "generate" in notes[0], notes
    assert not apply_mod.apply(generate.plan(str(root), NO_PLUGINS)).problems
    assert cli.main(["--root", str(root), "status"]) == 0
    assert "no hat file installed" not in capsys.readouterr().out
    (root / "etc/apparmor.d/php-fpm.d/b").unlink()
    assert cli.main(["--root", str(root), "status"]) == 0
    assert "note: 1 of 3 pool(s) have no hat file installed" in capsys.readouterr().out


def test_a_broken_override_of_a_shared_child_is_left_out_of_the_whole_profile(tmp_path):
    """An override the run cannot place on one hat (the shared sh child's) makes the whole
    profile compile; when it does not, the file including it is found and installed
    without it, and everything else still is."""
    root = three_pools(tmp_path)
    assert not apply_mod.apply(generate.plan(str(root), NO_PLUGINS)).problems
    local = root / "etc/apparmor.d/local/php-fpm.d"
    local.mkdir(parents=True)
    (local / "_sh").write_text("/bin/true rix\n")
    (local / "a").write_text("/srv/a-extra/** r,\n")
    out = apply_mod.apply(generate.plan(str(root), NO_PLUGINS))
    [problem] = out.problems
    assert problem.startswith(f"_shared: {local / '_sh'}: ") and "local overrides of _shared left out" in problem
    d = root / "etc/apparmor.d/php-fpm.d"
    assert out.left_out == ["_shared"] and "<local/php-fpm.d/_sh>" not in (d / "_shared").read_text()
    assert "<local/php-fpm.d/_sendmail>" not in (d / "_shared").read_text()  # the file's, all of them
    main = root / "etc/apparmor.d/php-fpm-apparmor"
    assert validate.compile_file(str(main), validate.search_dirs(str(root))) is None

"""The plugin boundary as a hostile or sloppy third party tried it (review of issue 11/9):
a plugin that changes what it was handed, returns rule look-alikes, names profiles or
includes it may not, prints, or carries a multi-line version. Each costs its pool alone,
with one line naming the plugin and the hook; nothing it asked for reaches a hat.
"""

import json
import os
import textwrap

import pytest

from php_fpm_apparmor import policy
from php_fpm_apparmor.api import App, ExecRule, FileRule, IncludeRule, hookimpl, under
from test_plugin_boundary import by_pool, plan_with, shop_detect, two_pools


class AddsRoot:
    @hookimpl
    def php_fpm_apparmor_detect(site, found):
        site.roots.append("/var/www/blog")  # read the blog's code from the shop
        return []


class RenamesHat:
    @hookimpl
    def php_fpm_apparmor_detect(site, found):
        if site.hat == "shop":
            site.hat = "blog"  # would make two pools define one hat: both fail
        return []


class ChangesPool:
    @hookimpl
    def php_fpm_apparmor_detect(site, found):
        if site.hat == "shop":
            site.pool.php_admin_values["upload_tmp_dir"] = "/var/www/blog"
        return []


class ChangesPhpIni:  # every pool of the installation shares one php.ini: handed read-only
    @hookimpl
    def php_fpm_apparmor_detect(site, found):
        if site.hat == "shop":
            site.pool.php_ini["open_basedir"] = "/var/www/blog"
        return []


class CopiesItsSite:  # copying what it was handed is fine: the copy is its own
    @hookimpl
    def php_fpm_apparmor_detect(site, found):
        import copy
        import pickle

        mine = copy.deepcopy(site)
        mine.pool.php_ini["open_basedir"] = "/anything"
        pickle.loads(pickle.dumps(site))
        return []


class Host:
    @hookimpl
    def php_fpm_apparmor_detect(site, found):
        return shop_detect(site, found)

    @hookimpl
    def php_fpm_apparmor_rules(site, app):
        if app.name != "shop":
            return []
        return [FileRule(path=under(app.info.get("data", app.root + "/data"), "/*.txt"), perms="rw", why="data")]


class Tamperer:  # changes another plugin's App.info, so the host writes elsewhere
    @hookimpl
    def php_fpm_apparmor_rules(site, app):
        app.info["data"] = "/var/www/blog"
        return []


@pytest.mark.parametrize("plugins, words", [
    ((AddsRoot,), "plugin AddsRoot: php_fpm_apparmor_detect: changed site.roots"),
    ((RenamesHat,), "plugin RenamesHat: php_fpm_apparmor_detect: changed site.hat"),
    ((ChangesPool,), "plugin ChangesPool: php_fpm_apparmor_detect: changed site.pool"),
    ((Host, Tamperer), "plugin Tamperer: php_fpm_apparmor_rules: changed app.info"),
    ((ChangesPhpIni,), "plugin ChangesPhpIni: php_fpm_apparmor_detect: raised TypeError("),
])
def test_a_plugin_that_changes_its_arguments_fails_its_pool_named(tmp_path, plugins, words):
    root = two_pools(tmp_path)
    pools = by_pool(plan_with(root, *plugins))
    assert words in (pools["shop"].problem or ""), pools["shop"].problem
    assert "/var/www/blog" not in (pools["shop"].text or "")
    # The core went on with the originals: the other pool is untouched, under its own hat.
    blog = pools["blog"]
    if AddsRoot in plugins:  # it changed the blog's site too: that pool fails as well, named
        assert "plugin AddsRoot" in blog.problem
    else:
        assert not blog.problem and blog.site.hat == "blog" and "^blog " in blog.text
    assert pools["shop"].site.roots == ["/var/www/shop"] and pools["shop"].site.hat == "shop"
    assert "open_basedir" not in pools["shop"].pool.php_ini


class Evil(FileRule):
    pass


def rules_plugin(*rules):
    class P:
        php_fpm_apparmor_detect = staticmethod(hookimpl(shop_detect))

        @hookimpl
        def php_fpm_apparmor_rules(site, app):
            return list(rules)
    return P


def setattr_ux():
    rule = ExecRule(path="/usr/bin/id", mode="ix")
    object.__setattr__(rule, "mode", "ux")  # past the frozen dataclass's own check
    return rule


@pytest.mark.parametrize("rule, words", [
    (Evil(path="/x", perms="r"), "(Evil), not one of FileRule"),
    (FileRule(path="/x", perms="r", profile="a { /** rw, } profile b"), "is not a child profile name"),
    (ExecRule(path="/usr/bin/id", mode="Px", target="../blog"), "'../blog' is not a child profile name"),
    (IncludeRule(name="/etc/apparmor.d/php-fpm.d/blog"), "a plugin includes only abstractions/base"),
    (IncludeRule(name="abstractions/../php-fpm.d/blog"), "a plugin includes only abstractions/base"),
    (IncludeRule(name="abstractions/user-tmp"), "a plugin includes only abstractions/base"),  # /tmp/** writable
    (IncludeRule(name="abstractions/php"), "a plugin includes only abstractions/base"),  # every pool's sessions
    (FileRule(path='/x" r,\n  /** rw,\n  "/y', perms="r"), "unescaped path pattern"),
    (setattr_ux(), "exec mode 'ux' is not allowed"),
])
def test_rule_look_alikes_fail_the_pool_naming_plugin_and_hook(tmp_path, rule, words):
    root = two_pools(tmp_path)
    pools = by_pool(plan_with(root, rules_plugin(rule)))
    problem = pools["shop"].problem or ""
    assert "plugin P: php_fpm_apparmor_rules: returned " in problem and words in problem, problem
    assert "\n" not in problem and pools["shop"].text is None
    assert not pools["blog"].problem and pools["blog"].text


def test_an_app_name_with_a_newline_fails_the_pool():
    from php_fpm_apparmor.apps import check_app
    from php_fpm_apparmor.errors import PluginError

    with pytest.raises(PluginError, match="not a non-empty printable string"):
        check_app("p", App("x\n  /** rw,", "/var/www/shop"))


LOUD = '''
import sys
from php_fpm_apparmor.api import hookimpl
__version__ = "6.6\\nfake line"
print("HELLO FROM IMPORT")

@hookimpl
def php_fpm_apparmor_detect(site, found):
    print("HELLO FROM DETECT")
    return []
'''


def test_a_plugin_that_prints_never_spoils_stdout_and_its_version_is_one_line(tmp_path, cli):
    root = two_pools(tmp_path)
    d = root / "etc/php-fpm-apparmor/plugins.d"
    d.mkdir(parents=True)
    (d / "loud_plugin_with_a_long_name.py").write_text(textwrap.dedent(LOUD))
    for p in (root / "etc/php-fpm-apparmor", d, d / "loud_plugin_with_a_long_name.py", root / "etc", root):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    status = cli("--json", "status", root=root)
    json.loads(status.stdout)  # nothing but the JSON on stdout
    assert "HELLO FROM DETECT" in status.stderr and "HELLO FROM IMPORT" in status.stderr
    listed = cli("plugins", root=root)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert "HELLO" not in listed.stdout and not any(ln.startswith("fake line") for ln in lines)
    (mine,) = [ln for ln in lines if ln.startswith("loud_plugin_with_a_long_name ")]
    assert mine.split()[1:] == ["6.6\\nfake", "line", "local"]  # one row, the \n shown escaped


MISSPELLED = '''
from php_fpm_apparmor.api import hookimpl

@hookimpl
def php_fpm_apparmor_rule(site, app):
    return []
'''


def test_a_misspelled_hook_marked_hookimpl_gets_the_near_miss(tmp_path):
    from php_fpm_apparmor import plugins as plugins_mod

    d = tmp_path / "etc/php-fpm-apparmor/plugins.d"
    d.mkdir(parents=True)
    (d / "typo.py").write_text(textwrap.dedent(MISSPELLED))
    for p in (tmp_path / "etc/php-fpm-apparmor", d, d / "typo.py", tmp_path / "etc", tmp_path):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    loaded = plugins_mod.load(entry_points=[], sysroot=str(tmp_path))
    (problem,) = loaded.problems
    assert "php_fpm_apparmor_rule is not a hook (did you mean php_fpm_apparmor_rules?)" in problem
    assert "typo" in problem and "\n" not in problem


class ClaimsTheBlog:
    @hookimpl
    def php_fpm_apparmor_roots(site):
        return ["/var/www/blog"] if site.hat == "shop" else []


class ClaimsNamed:  # the pool names the directory itself: an app served twice, the admin's call
    @hookimpl
    def php_fpm_apparmor_roots(site):
        return ["/var/www/blog"] if site.hat == "shop" and site.pool.chdir == "/var/www/blog" else []


def test_a_plugin_never_claims_another_pools_root(tmp_path):
    root = two_pools(tmp_path)
    result = plan_with(root, ClaimsTheBlog)
    pools = by_pool(result)
    assert ("plugin ClaimsTheBlog: php_fpm_apparmor_roots: claimed /var/www/blog, which reaches pool "
            "blog's root /var/www/blog") in (pools["shop"].problem or ""), pools["shop"].problem
    assert pools["shop"] not in result.ready  # its hat is not written
    assert not pools["blog"].problem and pools["blog"] in result.ready


def test_a_claimed_root_the_pool_names_itself_is_kept(tmp_path):
    from systree import make_tree, pool_conf

    root = make_tree(tmp_path, {"shop": pool_conf("shop", "/var/www/blog", hat="shop"),
                                "blog": pool_conf("blog", "/var/www/blog", hat="blog")})
    pools = by_pool(plan_with(root, ClaimsNamed))
    assert not pools["shop"].problem and pools["shop"].site.roots == ["/var/www/blog"]
    assert "claimed by plugin ClaimsNamed" in pools["shop"].site.origin


def test_never_code_is_what_makes_a_writable_tree_acceptable(tmp_path):
    """API 1.1: the guide's answer to "my `dir/**` rw rule is refused"."""
    from php_fpm_apparmor import testing
    from php_fpm_apparmor.api import Expectation, never_code

    (tmp_path / "var/www/shop/data").mkdir(parents=True)

    def plugin(extra):
        class Tree:
            @hookimpl
            def php_fpm_apparmor_detect(site, found):
                return [App("tree", site.roots[0])]

            @hookimpl
            def php_fpm_apparmor_rules(site, app):
                return [FileRule(path=under(app.root, "/data/**"), perms="rw", why="data")] + extra(app.root)
        return Tree

    site = testing.site(tmp_path, "shop", ["/var/www/shop"])
    bare = testing.build(site, testing.plugins(plugin(lambda root: [])))
    assert any("would let PHP write" in p for p in testing.problems(bare))
    guarded = testing.build(site, testing.plugins(plugin(lambda root: never_code(root + "/data"))))
    assert testing.problems(guarded) == []
    rows = [Expectation("write", "{root}/data/a.txt", "allow", "data"),
            Expectation("write", "{root}/data/x/a.PHP7", "deny", "code in any case"),
            Expectation("write", "{root}/data/.user.ini", "deny", "server config")]
    assert testing.failed_expectations(guarded, rows, root="/var/www/shop") == []


SLOW_IMPORT = '''
import time
time.sleep(30)
'''

HANGS = '''
from php_fpm_apparmor.api import hookimpl

@hookimpl
def php_fpm_apparmor_detect(site, found):
    if site.hat == "shop":
        while True:
            try:
                time_passes = sum(range(1000))
            except Exception:  # a sloppy plugin's catch-all does not swallow the limit
                pass
    return []
'''


def test_a_plugin_that_hangs_costs_its_pool_not_the_run(tmp_path, monkeypatch):
    import time

    from php_fpm_apparmor import plugins as plugins_mod

    monkeypatch.setattr(plugins_mod, "IMPORT_SECONDS", 0.5)
    monkeypatch.setattr(plugins_mod, "HOOK_SECONDS", 0.5)
    root = two_pools(tmp_path)
    d = root / "etc/php-fpm-apparmor/plugins.d"
    d.mkdir(parents=True)
    (d / "slow.py").write_text(SLOW_IMPORT)
    (d / "hangs.py").write_text(HANGS)
    for p in (root / "etc/php-fpm-apparmor", d, d / "slow.py", d / "hangs.py", root / "etc", root):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    start = time.monotonic()
    loaded = plugins_mod.load(entry_points=[], sysroot=str(root))
    (problem,) = loaded.problems
    assert "plugin slow" in problem and "failed to load" in problem and "the import took longer" in problem
    from php_fpm_apparmor import generate
    pools = by_pool(generate.plan(str(root), loaded))
    assert time.monotonic() - start < 10
    assert "plugin hangs: php_fpm_apparmor_detect: raised PluginTimeout('the call took longer than 0.5 s')" \
        in (pools["shop"].problem or ""), pools["shop"].problem
    assert not pools["blog"].problem and pools["blog"].text


HANGS_EVERYWHERE = '''
import time
from php_fpm_apparmor.api import hookimpl

@hookimpl
def php_fpm_apparmor_detect(site, found):
    time.sleep(3600)  # a call to a licence server that does not answer
'''


def test_a_plugin_that_hangs_on_every_pool_costs_two_limits_not_one_per_pool(tmp_path, monkeypatch):
    """php-fpm's ExecStartPre waits for generate, and systemd gives php-fpm 90 s to start: a
    limit per pool (10 s x a thousand pools) kept php-fpm down. After MAX_TIMEOUTS, the
    plugin is not called again in the run; each pool fails at once, naming it."""
    import time

    from php_fpm_apparmor import generate
    from php_fpm_apparmor import plugins as plugins_mod
    from systree import make_tree, pool_conf

    monkeypatch.setattr(plugins_mod, "HOOK_SECONDS", 0.5)
    names = [f"site{i}" for i in range(8)]
    root = make_tree(tmp_path, {n: pool_conf(n, f"/var/www/{n}", hat=n) for n in names})
    d = root / "etc/php-fpm-apparmor/plugins.d"
    d.mkdir(parents=True)
    (d / "licensed.py").write_text(HANGS_EVERYWHERE)
    for p in (root / "etc/php-fpm-apparmor", d, d / "licensed.py", root / "etc", root):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    loaded = plugins_mod.load(entry_points=[], sysroot=str(root))
    assert not loaded.problems, loaded.problems
    start = time.monotonic()
    pools = by_pool(generate.plan(str(root), loaded))
    took = time.monotonic() - start
    assert took < plugins_mod.MAX_TIMEOUTS * 0.5 + 2.5, took  # a limit per pool: 4 s and more
    timed_out = [n for n in names if "raised PluginTimeout('the call took longer than 0.5 s')" in
                 (pools[n].problem or "")]
    not_called = [n for n in names if "plugin licensed: php_fpm_apparmor_detect: ran out of time (0.5 s) 2 "
                  "times earlier in this run: not called again" in (pools[n].problem or "")]
    assert len(timed_out) == plugins_mod.MAX_TIMEOUTS and len(not_called) == len(names) - plugins_mod.MAX_TIMEOUTS, \
        {n: pools[n].problem for n in names}
    assert all(pools[n].text is None for n in names)  # each failed pool keeps what it had (nothing here)
    # the next run calls it again: the count is the run's, not the machine's
    again = plugins_mod.load(entry_points=[], sysroot=str(root))
    assert again.timeouts == {}


class ClaimsSlash:
    @hookimpl
    def php_fpm_apparmor_roots(site):
        return ["/"] if site.hat == "shop" else []


def test_a_refused_claimed_root_names_the_plugin(tmp_path):
    root = two_pools(tmp_path)
    pools = by_pool(plan_with(root, ClaimsSlash))
    problem = pools["shop"].problem or ""
    assert "plugin ClaimsSlash: php_fpm_apparmor_roots: site root / is a system directory" in problem, problem
    assert not pools["blog"].problem


class StringDetect:
    @hookimpl
    def php_fpm_apparmor_detect(site, found):
        return "shop" if site.hat == "shop" else []


def test_trace_of_a_failed_pool_says_so(tmp_path):
    from php_fpm_apparmor import plugins as plugins_mod, trace

    root = two_pools(tmp_path)
    loaded = plugins_mod.load(entry_points=[], extra=[StringDetect])
    records, entries = trace.run(str(root), loaded, "shop")
    lines = trace.lines(records, entries)
    assert lines[0].startswith("pool 8.2/shop (hat shop): FAILED: ") and "plugin StringDetect" in lines[0]
    assert lines[1:] == ["  no plugin answered before that failure"]


class BadVersion:
    class _V:
        def __str__(self):
            raise RuntimeError("no")

    __version__ = _V()

    @hookimpl
    def php_fpm_apparmor_detect(site, found):
        return []


def test_a_version_that_cannot_be_printed_is_a_question_mark():
    from php_fpm_apparmor import plugins as plugins_mod

    loaded = plugins_mod.load(entry_points=[], extra=[BadVersion])
    assert [(i.name, i.version) for i in loaded.info] == [("BadVersion", "?")]


class AppInEtc:
    @hookimpl
    def php_fpm_apparmor_detect(site, found):
        return [App("x", "/etc")] if site.hat == "shop" else []

    @hookimpl
    def php_fpm_apparmor_rules(site, app):
        return [FileRule(path=under(app.root, "/cron.d/*"), perms="w")] if app.name == "x" else []


def test_an_app_outside_the_site_fails_the_pool(tmp_path):
    root = two_pools(tmp_path)
    pools = by_pool(plan_with(root, AppInEtc))
    problem = pools["shop"].problem or ""
    assert "plugin AppInEtc: php_fpm_apparmor_detect: returned App 'x' at '/etc', outside the pool's site roots" \
        in problem, problem
    assert not pools["blog"].problem


def test_first_party_plugins_get_the_originals_and_the_suite_guards_them(monkeypatch):
    """Production hands this distribution's plugins the originals (no copy); the suite's
    conftest turns the guard on for them too. Both ways, the first-party set is the same."""
    from php_fpm_apparmor import plugins as plugins_mod

    assert os.environ.get(plugins_mod.GUARD_ENV) == "1"
    assert plugins_mod.load(external=False).trusted == set()
    monkeypatch.delenv(plugins_mod.GUARD_ENV)
    loaded = plugins_mod.load(external=False)
    assert loaded.trusted == {i.name for i in loaded.info if i.source == "first-party"}
    assert {"wordpress", "nextcloud"} <= loaded.trusted


# Known: base's ecryptfs lines, whose write and link every profile of ours that includes
# base takes back (policy.base_denies, tests/test_master_profile.py); fonts' hard links in
# the user's fontconfig cache (no new content, nothing a web server serves).
KNOWN = {("abstractions/base", "@{HOME}/.Private/**"), ("abstractions/base", "@{HOMEDIRS}/.ecryptfs/*/.Private/**"),
         ("abstractions/fonts", "@{HOME}/.{,cache/}fontconfig/**")}


@pytest.mark.parametrize("name", sorted(policy.PLUGIN_ABSTRACTIONS))
def test_each_abstraction_a_plugin_may_include_writes_no_code(tmp_path, name):
    """Expanded by the real parser (this release's abstractions): no rule that writes
    (w, a, l) can reach a PHP file or server config, and none is executable as well."""
    import re
    import subprocess

    from php_fpm_apparmor import invariants, validate

    parser = validate.parser()
    if parser is None:
        pytest.skip("apparmor_parser not installed")
    prof = tmp_path / "t"
    prof.write_text(f"profile t {{\n  include <{name}>\n}}\n")
    out = subprocess.run([parser, "-p", str(prof)], capture_output=True, text=True, check=True).stdout
    rules = [m.groups() for m in re.finditer(r"(?m)^\s*(?:owner\s+)?([/@]\S*)\s+([a-zA-Z]+),\s*$", out)]
    assert rules, out[-500:]
    writes = [(path, perms) for path, perms in rules if set(perms) & set("wal") and (name, path) not in KNOWN]
    bad = [(p, perms, invariants.code_witness(p)) for p, perms in writes
           if invariants.code_witness(p) or set(perms) & set("mix")]
    assert not bad, bad


def test_a_plugin_may_not_pass_for_the_core(tmp_path):
    """Rules carry their plugin's name as provenance, which the checks read: "core" and
    names that could spoof the comment are refused at load time."""
    from php_fpm_apparmor import plugins as plugins_mod

    import types

    def detect(site, found):
        return []

    mods = []
    for name in ("core", "config", "x: y"):
        mod = types.ModuleType(name)
        mod.php_fpm_apparmor_detect = hookimpl(detect)
        mods.append(mod)
    loaded = plugins_mod.load(entry_points=[], extra=mods)
    assert loaded.info == []
    for name in ("core", "config", "x: y"):
        assert any(f"plugin {name} (extra) refused" in p for p in loaded.problems), loaded.problems


def test_a_plugin_may_copy_what_it_was_handed(tmp_path):
    root = two_pools(tmp_path)
    pools = by_pool(plan_with(root, CopiesItsSite))
    assert not pools["shop"].problem and not pools["blog"].problem, (pools["shop"].problem, pools["blog"].problem)
    assert "open_basedir" not in pools["shop"].pool.php_ini


class ShopToo:  # a second plugin for the same app at the same root
    php_fpm_apparmor_detect = staticmethod(hookimpl(shop_detect))


class ShopAgain:
    php_fpm_apparmor_detect = staticmethod(hookimpl(shop_detect))


def test_two_plugins_detecting_one_app_at_one_root_are_said(tmp_path):
    """Only one App per name and root is kept: the other plugin's is not dropped silently."""
    root = two_pools(tmp_path)
    result = plan_with(root, ShopToo, ShopAgain)
    pools = by_pool(result)
    assert [a.name for a in pools["shop"].apps] == ["shop"]
    kept = pools["shop"].apps[0].plugin
    other = ({"ShopToo", "ShopAgain"} - {kept}).pop()
    line = f"pool shop: plugins {kept} and {other} both detected shop at /var/www/shop; {kept}'s is used"
    assert result.warnings.count(line) == 1, result.warnings

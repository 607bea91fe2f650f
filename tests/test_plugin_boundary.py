"""The plugin boundary (issue 9): a plugin's mistake costs its pools, named, never silently.

Each test runs a plugin a careless or hostile third party could ship, through the real
loader and pipeline (plan, apply to a --root tree, the command line), next to a good pool.
"""

import copy
import os
import textwrap
from importlib import metadata
from types import SimpleNamespace

import pytest

from php_fpm_apparmor import generate, plugins as plugins_mod
from php_fpm_apparmor.apps import App
from php_fpm_apparmor.errors import PluginError
from php_fpm_apparmor.hookspecs import hookimpl
from php_fpm_apparmor.policy import FileRule, under
from systree import make_tree, pool_conf

OWN = metadata.distribution("php-fpm-apparmor")


def two_pools(tmp_path):
    root = make_tree(tmp_path, {"shop": pool_conf("shop", "/var/www/shop", hat="shop"),
                                "blog": pool_conf("blog", "/var/www/blog", hat="blog")})
    (root / "var/www/shop/shop.txt").write_text("1.0")
    return root


def shop_detect(site, found):
    if site.disk(site.roots[0], "shop.txt").exists():
        return [App("shop", site.roots[0], plugin="x")]
    return []


def plan_with(root, *plugins):
    loaded = plugins_mod.load(entry_points=[], extra=plugins)
    assert not loaded.problems, loaded.problems
    return generate.plan(str(root), loaded)


def by_pool(result):
    return {e.pool.name: e for e in result.entries}


class Raises:
    php_fpm_apparmor_detect = staticmethod(hookimpl(shop_detect))

    @hookimpl
    def php_fpm_apparmor_rules(site, app):
        raise RuntimeError("boom")


def test_a_hook_that_raises_fails_its_pool_naming_the_plugin_and_hook(tmp_path, cli):
    root = two_pools(tmp_path)
    result = plan_with(root, Raises)
    pools = by_pool(result)
    problem = pools["shop"].problem
    assert problem and "plugin Raises: php_fpm_apparmor_rules: raised RuntimeError('boom')" in problem
    assert pools["shop"].text is None  # no hat without the app's rules
    assert pools["blog"] in result.ready  # the other pool is untouched


class ReturnsString:
    @hookimpl
    def php_fpm_apparmor_detect(site, found):
        return "shop"


class ReturnsWrongItem:
    @hookimpl
    def php_fpm_apparmor_detect(site, found):
        return [{"name": "shop", "root": site.roots[0]}] if site.disk(site.roots[0], "shop.txt").exists() else []


class ReturnsRelativeRoot:
    @hookimpl
    def php_fpm_apparmor_detect(site, found):
        return [App("shop", "var/www/shop")] if site.disk(site.roots[0], "shop.txt").exists() else []


@pytest.mark.parametrize("plugin, words", [
    (ReturnsString, "php_fpm_apparmor_detect: returned 'shop' (str), not a list"),
    (ReturnsWrongItem, "php_fpm_apparmor_detect: returned {'name': 'shop'"),
    (ReturnsRelativeRoot, "root is 'var/www/shop', not an absolute path"),
])
def test_detect_returning_something_else_than_apps_fails_the_pool(tmp_path, plugin, words):
    root = two_pools(tmp_path)
    pools = by_pool(plan_with(root, plugin))
    assert words in (pools["shop"].problem or ""), pools["shop"].problem
    assert f"plugin {plugin.__name__}:" in pools["shop"].problem
    if plugin is not ReturnsString:
        assert pools["blog"].text is not None and not pools["blog"].problem


class BadRules:
    php_fpm_apparmor_detect = staticmethod(hookimpl(shop_detect))

    @hookimpl
    def php_fpm_apparmor_rules(site, app):
        return ["/etc/shadow r,", FileRule(path=under(app.root, "/x"), perms="r")]


class BadRuleField:
    php_fpm_apparmor_detect = staticmethod(hookimpl(shop_detect))

    @hookimpl
    def php_fpm_apparmor_rules(site, app):
        return [FileRule(path=under(app.root, "/x"), perms="r", why=["not", "a", "string"])]


class BadRuleArgs:
    php_fpm_apparmor_detect = staticmethod(hookimpl(shop_detect))

    @hookimpl
    def php_fpm_apparmor_rules(site, app):
        return [FileRule(path="relative/x", perms="r")]  # the dataclass refuses it inside the hook


@pytest.mark.parametrize("plugin, words", [
    (BadRules, "php_fpm_apparmor_rules: returned '/etc/shadow r,' (str), not a policy rule"),
    (BadRuleField, "its why is ['not', 'a', 'string']"),
    (BadRuleArgs, "php_fpm_apparmor_rules: raised ValueError(\"file rule path must be absolute"),
])
def test_rules_that_are_not_rules_fail_the_pool(tmp_path, plugin, words):
    root = two_pools(tmp_path)
    pools = by_pool(plan_with(root, plugin))
    assert words in (pools["shop"].problem or ""), pools["shop"].problem
    assert pools["blog"].text is not None and not pools["blog"].problem


def test_generate_and_check_exit_1_and_keep_the_good_pool(tmp_path, cli):
    """Through the command line with a local plugin that raises: one line naming it."""
    root = two_pools(tmp_path)
    d = root / plugins_mod.LOCAL_DIR.lstrip("/")
    d.mkdir(parents=True)
    (d / "raiser.py").write_text(textwrap.dedent("""
        from php_fpm_apparmor.api import App, hookimpl

        @hookimpl
        def php_fpm_apparmor_detect(site, found):
            if site.disk(site.roots[0], "shop.txt").exists():
                return [App("shop", site.roots[0])]
            return []

        @hookimpl
        def php_fpm_apparmor_rules(site, app):
            raise KeyError("config\\nsecond line")
        """))
    proc = cli("generate", root=root)
    assert proc.returncode == 1, proc.stderr
    lines = [l for l in proc.stderr.splitlines() if "raiser" in l]
    assert len(lines) == 1 and "pool shop" in lines[0] and "php_fpm_apparmor_rules" in lines[0], proc.stderr
    assert (root / "etc/apparmor.d/php-fpm.d/blog").is_file()
    # The broken plugin's pool still gets a hat: the core-only one, none of the app's rules.
    assert generate.CORE_ONLY in (root / "etc/apparmor.d/php-fpm.d/shop").read_text()
    proc = cli("check", root=root)
    assert proc.returncode == 1 and "plugin raiser: php_fpm_apparmor_rules" in proc.stdout


class CheckRaises:
    php_fpm_apparmor_detect = staticmethod(hookimpl(shop_detect))

    @hookimpl
    def php_fpm_apparmor_check(site, app):
        raise OSError("disk")


class CheckMultiline:
    php_fpm_apparmor_detect = staticmethod(hookimpl(shop_detect))

    @hookimpl
    def php_fpm_apparmor_check(site, app):
        return ["first\nfake: second finding"]


def test_check_hook_mistakes_are_findings_and_findings_are_one_line(tmp_path, capsys):
    import argparse

    from php_fpm_apparmor import check

    root = two_pools(tmp_path)
    args = argparse.Namespace(root=str(root), json=False)
    out = check.findings(args, plugins_mod.load(entry_points=[], extra=[CheckRaises]))
    assert any("plugin CheckRaises: php_fpm_apparmor_check: raised OSError('disk')" in f for f in out), out
    assert check.cmd_check(args, plugins_mod.load(entry_points=[], extra=[CheckMultiline])) == 1
    printed = capsys.readouterr().out.splitlines()
    assert any(l.endswith("first\\nfake: second finding") for l in printed), printed
    assert not any(l.startswith("fake:") for l in printed)


# --- load time: mistakes pluggy would ignore, reported by name --------------------------

class Misspelled:
    @hookimpl
    def php_fpm_apparmor_rule(site, app):  # the hook is php_fpm_apparmor_rules
        return []


class Unmarked:
    def php_fpm_apparmor_rules(site, app):  # no @hookimpl: pluggy never calls it
        return []


class MisspelledUnmarked:
    def php_fpm_apparmor_detct(site, found):
        return []


class WrongArgs:
    @hookimpl
    def php_fpm_apparmor_rules(site, app, pool):
        return []


@pytest.mark.parametrize("plugin, words", [
    (Misspelled, "php_fpm_apparmor_rule is not a hook (did you mean php_fpm_apparmor_rules?)"),
    (Unmarked, "php_fpm_apparmor_rules has no @hookimpl"),
    (MisspelledUnmarked, "php_fpm_apparmor_detct is not a hook (did you mean php_fpm_apparmor_detect?)"),
    (WrongArgs, "pool"),
])
def test_hookimpl_mistakes_refuse_the_plugin_by_name(plugin, words):
    loaded = plugins_mod.load(entry_points=[], extra=[plugin])
    assert len(loaded.problems) == 1 and f"plugin {plugin.__name__}" in loaded.problems[0], loaded.problems
    assert words in loaded.problems[0], loaded.problems
    assert not loaded.info  # not listed as healthy
    assert not loaded.pm.get_plugins()  # and never called


def _ep(name, value, dist):
    """An entry point as importlib.metadata hands it out: name, value, dist, load()."""
    real = metadata.EntryPoint(name, value, "php_fpm_apparmor")
    return SimpleNamespace(name=name, value=value, group="php_fpm_apparmor", dist=dist, load=real.load)


def test_the_kill_switch_works_by_distribution_not_module_path(monkeypatch):
    other = SimpleNamespace(name="evil-pack", version="6.6", metadata={"Name": "evil-pack"})
    eps = [_ep("wordpress", "php_fpm_apparmor_plugins.wordpress", OWN),
           # another distribution naming a first-party module: still external
           _ep("wp2", "php_fpm_apparmor_plugins.nextcloud", other),
           _ep("external", "json", other),
           _ep("broken", "no_such_module_xyz", other)]
    loaded = plugins_mod.load(entry_points=eps)
    assert {i.name: i.source for i in loaded.info} == {"wordpress": "first-party", "wp2": "evil-pack",
                                                       "external": "evil-pack"}
    assert any("broken" in p and "No module named" in p for p in loaded.problems)
    monkeypatch.setenv(plugins_mod.NO_EXTERNAL_ENV, "1")
    loaded = plugins_mod.load(entry_points=eps)
    assert [i.name for i in loaded.info] == ["wordpress"] and not loaded.problems
    monkeypatch.delenv(plugins_mod.NO_EXTERNAL_ENV)
    assert [i.name for i in plugins_mod.load(entry_points=eps, external=False).info] == ["wordpress"]


def test_plugins_exits_1_when_a_plugin_failed_to_load(tmp_path, cli):
    root = make_tree(tmp_path, {})
    proc = cli("plugins", root=root)
    assert proc.returncode == 0, proc.stderr
    d = root / plugins_mod.LOCAL_DIR.lstrip("/")
    d.mkdir(parents=True)
    (d / "typo.py").write_text("from php_fpm_apparmor.api import hookimpl\n\n"
                               "@hookimpl\ndef php_fpm_apparmor_rule(site, app):\n    return []\n")
    proc = cli("plugins", root=root)
    assert proc.returncode == 1
    assert "plugin typo" in proc.stderr and "php_fpm_apparmor_rule is not a hook (did you mean php_fpm_apparmor_rules?)" in proc.stderr
    assert "typo" not in proc.stdout


def test_plugin_error_is_a_value_error_the_pipeline_catches():
    exc = PluginError("p", "php_fpm_apparmor_rules", "returned 1")
    assert isinstance(exc, ValueError) and str(exc) == "plugin p: php_fpm_apparmor_rules: returned 1"


class Exits:
    php_fpm_apparmor_detect = staticmethod(hookimpl(shop_detect))

    @hookimpl
    def php_fpm_apparmor_rules(site, app):
        raise SystemExit(3)


def test_a_hook_calling_sys_exit_fails_only_its_pool(tmp_path):
    pools = by_pool(plan_with(two_pools(tmp_path), Exits))
    assert "plugin Exits: php_fpm_apparmor_rules: raised SystemExit(3)" in pools["shop"].problem
    assert pools["blog"].text is not None


def test_each_field_of_a_plugins_rule_is_checked_for_its_type():
    """A rule's fields are what render writes: a string where a string goes, a bool for
    owner/deny/audit, a string or None for an exec target, a tuple of strings for signals.
    Set after the dataclass's own checks (object.__setattr__), each is refused, named."""
    from php_fpm_apparmor.errors import PluginError
    from php_fpm_apparmor.policy import ExecRule, SignalRule, _check_rule

    ok = [FileRule(path="/var/www/x/**", perms="r"), ExecRule(path="/usr/bin/convert", mode="Cx", target="convert"),
          SignalRule(access="send", signals=("term",), peer="php-fpm", profile="master")]
    for rule in ok:
        _check_rule("p", rule)
    for rule, name, value in ((ok[0], "owner", "yes"), (ok[0], "path", 5), (ok[0], "why", None),
                              (ok[1], "target", 5), (ok[2], "signals", ["term"]), (ok[2], "signals", ("term", 9))):
        bad = copy.copy(rule)
        object.__setattr__(bad, name, value)
        with pytest.raises(PluginError, match=f"its {name} is "):
            _check_rule("p", bad)
    ok_none = copy.copy(ok[1])
    object.__setattr__(ok_none, "mode", "ix")
    object.__setattr__(ok_none, "target", None)
    _check_rule("p", ok_none)

"""php_fpm_apparmor.testing: what a third party's test suite relies on."""

import os

import pytest

from php_fpm_apparmor import testing
from php_fpm_apparmor.api import App, Expectation, FileRule, hookimpl, under


class Shop:
    @hookimpl
    def php_fpm_apparmor_detect(site, found):
        return [App("shop", r) for r in site.roots if site.disk(r, "shop.txt").exists()]

    @hookimpl
    def php_fpm_apparmor_rules(site, app):
        return [FileRule(path=under(app.root, "/var/*.dat"), perms="rw", owner=True, why="data")] \
            if app.name == "shop" else []


TABLE = [Expectation("write", "{shop}/var/a.dat", "allow", "save data"),
         Expectation("write", "{shop}/index.php", "deny", "replace code"),
         Expectation("read", "{elsewhere}/x", "deny", "another site")]


def shop(tmp_path):
    (tmp_path / "srv/shop").mkdir(parents=True)
    (tmp_path / "srv/shop/shop.txt").write_text("1")
    return testing.build(testing.site(tmp_path, "shop", ["/srv/shop"]), testing.plugins(Shop))


def test_loading_plugins_leaves_the_environment_alone(tmp_path):
    before = dict(os.environ)
    testing.plugins(Shop)
    shop(tmp_path)
    assert dict(os.environ) == before


def test_placeholders_are_the_tables_own(tmp_path):
    built = shop(tmp_path)
    assert [a.name for a in built.apps] == ["shop"]
    assert TABLE[0].placeholders == {"shop"} and TABLE[2].placeholders == {"elsewhere"}
    assert testing.failed_expectations(built, TABLE, shop="/srv/shop", elsewhere="/srv/other") == []
    # a row whose placeholder nobody filled in is a failure, not a pass
    assert testing.failed_expectations(built, TABLE, shop="/srv/shop") == ["read {elsewhere}/x: no value for elsewhere"]
    # and a row the policy gets wrong is reported with its why
    wrong = [Expectation("write", "{shop}/var/a.log", "allow", "write logs")]
    assert testing.failed_expectations(built, wrong, shop="/srv/shop") == \
        ["write /srv/shop/var/a.log: expected allow (write logs)"]


def test_problems_and_compile_error_judge_for_real(tmp_path):
    built = shop(tmp_path)
    assert testing.problems(built) == []
    try:
        assert testing.compile_error(built) is None
    except RuntimeError as exc:
        pytest.skip(str(exc))


def test_a_refused_plugin_is_an_error_not_a_silent_pass():
    class Typo:
        @hookimpl
        def php_fpm_apparmor_rule(site, app):
            return []

    with pytest.raises(RuntimeError, match=r"php_fpm_apparmor_rule is not a hook \(did you mean php_fpm_apparmor_rules\?\)"):
        testing.plugins(Typo)

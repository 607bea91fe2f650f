"""The closed list of what a hat may hold (issue 9, findings 5-7), through the real
pipeline: a hostile plugin registered in-process, `generate.plan` on a --root tree. Each
finding is refused with one line naming the pool, the profile, the rule and its source,
and the other pool is untouched."""

import argparse

import pytest

from apptrees import nextcloud
from php_fpm_apparmor import check, generate, invariants, plugins as plugins_mod, render
from php_fpm_apparmor.apps import App
from php_fpm_apparmor.hookspecs import hookimpl
from php_fpm_apparmor.policy import (CapabilityRule, DataDir, ExecRule, FileRule, PtraceRule, SignalRule,
                                     WriteException, lit, under)
from systree import make_tree, pool_conf

SHOP = "/var/www/shop"
BLOG = "/var/www/blog"
CONFIG = "etc/php-fpm-apparmor/php-fpm-apparmor.conf"


def hostile(rules, exceptions=()):
    """A third-party plugin that finds its app in the shop pool and asks for `rules`."""

    def detect(site, found):
        return [App("shop", site.roots[0], plugin="hostile")] if site.roots[0] == SHOP else []

    def rules_hook(site, app):
        return list(rules) if app.name == "shop" else []

    def exceptions_hook(site, app):
        return list(exceptions) if app.name == "shop" else []

    return type("Hostile", (), {
        "php_fpm_apparmor_detect": staticmethod(hookimpl(detect)),
        "php_fpm_apparmor_rules": staticmethod(hookimpl(rules_hook)),
        "php_fpm_apparmor_exceptions": staticmethod(hookimpl(exceptions_hook)),
    })


def tree(tmp_path):
    return make_tree(tmp_path, {
        "blog": pool_conf("blog", BLOG, hat="blog", extra="php_admin_value[session.save_path] = /srv/sessions/blog\n"),
        "shop": pool_conf("shop", SHOP, hat="shop"),
    })


def refused(tmp_path, rules, exceptions=()) -> str:
    """The shop pool's one refusal line; the blog pool must stay ready."""
    result = generate.plan(str(tree(tmp_path)), plugins_mod.load(entry_points=[], extra=[hostile(rules, exceptions)]))
    by = {e.pool.name: e for e in result.entries}
    assert by["blog"].problem is None and by["blog"] in result.ready, by["blog"].problem
    problem = by["shop"].problem
    assert problem and "pool shop: policy refused:" in problem and "\n" not in problem, problem
    assert "(Hostile" in problem, problem  # the rule's source, from the rendered provenance
    return problem


def accepted(tmp_path, rules, exceptions=()):
    result = generate.plan(str(tree(tmp_path)), plugins_mod.load(entry_points=[], extra=[hostile(rules, exceptions)]))
    assert not result.problems, result.problems
    return {e.pool.name: e for e in result.entries}


# --- finding 5 ------------------------------------------------------------------------

def test_capability_in_the_hat(tmp_path):
    p = refused(tmp_path, [CapabilityRule(name="sys_admin")])
    assert "php-fpm//shop: capability sys_admin, is a capability" in p


def test_capability_in_a_child(tmp_path):
    p = refused(tmp_path, [CapabilityRule(name="dac_override", profile="helper"),
                           ExecRule(path="/usr/bin/helper", mode="Px", target="helper")])
    assert "php-fpm//shop_helper: capability dac_override," in p


def test_write_outside_the_pools_own_paths(tmp_path):
    p = refused(tmp_path, [FileRule(path="/etc/cron.d/x", perms="w")])
    assert "php-fpm//shop: /etc/cron.d/x would let PHP write /etc/cron.d/x, outside the pool's own paths" in p


def test_ptrace_with_anything_but_the_master(tmp_path):
    p = refused(tmp_path, [PtraceRule(access="trace", peer="unconfined")])
    assert "is ptrace with unconfined: only with the master" in p


def test_signal_to_another_pools_hat(tmp_path):
    p = refused(tmp_path, [SignalRule(access="send", signals=("kill",), peer="php-fpm//blog")])
    assert "signal (send) set=(kill) peer=php-fpm//blog, is signal with php-fpm//blog" in p


def test_the_master_signals_only_this_pools_profiles(tmp_path):
    p = refused(tmp_path, [SignalRule(access="send", signals=("kill",), peer="php-fpm//blog", profile="master")])
    assert "php-fpm: signal (send) set=(kill) peer=php-fpm//blog, lets the master signal php-fpm//blog" in p


def test_another_pools_session_dir(tmp_path):
    p = refused(tmp_path, [FileRule(path="/srv/sessions/blog/*", perms="rw")])
    assert "reaches pool blog's session dir /srv/sessions/blog" in p


def test_write_then_run(tmp_path):
    p = refused(tmp_path, [FileRule(path=under(SHOP, "/uploads/*.bin"), perms="rw"),
                           ExecRule(path=under(SHOP, "/uploads/*.bin"), mode="Px", target="bin"),
                           ExecRule(path=under(SHOP, "/uploads/*.bin"), mode="ix", profile="bin")])
    assert f"allows exec (Px) on {SHOP}/uploads/.bin, which php-fpm//shop may write" in p
    assert "no path is both written and run" in p


def test_mmap_of_a_writable_path(tmp_path):
    p = refused(tmp_path, [FileRule(path=under(SHOP, "/lib/*.so"), perms="rwm")])
    assert f"allows mmap (m) on {SHOP}/lib/.so" in p


def test_a_shell_inherited_in_the_hat(tmp_path):
    p = refused(tmp_path, [ExecRule(path="/bin/bash", mode="ix")])
    assert "php-fpm//shop: /bin/bash runs in the hat itself (ix)" in p


def test_a_transition_into_another_pools_child(tmp_path):
    # Plugins name helpers, so the renderer only writes this pool's children; the check
    # reads the text all the same: edited text with another pool's child is refused.
    by = accepted(tmp_path, [ExecRule(path="/usr/bin/convert", mode="Px", target="im"),
                             FileRule(path="/usr/bin/convert", perms="mr", profile="im")])
    shop = by["shop"]
    assert '"/usr/bin/convert" mrPx -> php-fpm//shop_im,' in shop.text
    for edit, what in (("php-fpm//blog_im,", "transitions to php-fpm//blog_im, not a child profile of this pool"),
                       ("php-fpm//shop_im, # x", "cannot check rule")):
        text = shop.text.replace("php-fpm//shop_im,", edit)
        problems = invariants.check(shop.policy, text).problems
        assert any(what in p for p in problems), problems
    text = shop.text.replace('"/usr/bin/convert" mrPx -> php-fpm//shop_im,', '"/usr/bin/convert" mrux,')
    assert any("runs unconfined (ux)" in p for p in invariants.check(shop.policy, text).problems)
    with pytest.raises(ValueError):
        ExecRule(path="/usr/bin/x", mode="ux")  # and the model cannot even say it


def test_an_exception_for_the_whole_site(tmp_path):
    p = refused(tmp_path, [FileRule(path=under(SHOP, "/**"), perms="rw")],
                [WriteException(path=under(SHOP, "/**"), why="we write everything")])
    assert f"exception {SHOP}/** covers a whole site root" in p


def test_code_written_outside_the_site_without_an_exception(tmp_path):
    # a template cache in a data dir of its own, then included: code all the same
    p = refused(tmp_path, [DataDir(path="/srv/shop-cache", why="compiled templates"),
                           FileRule(path="/srv/shop-cache/*.php", perms="rw")])
    assert "/srv/shop-cache/*.php would let PHP write /srv/shop-cache/.php; no plugin declared this exception" in p
    assert "outside the pool's own paths" not in p  # the data dir is the pool's own


def test_code_written_with_an_exact_exception_is_accepted(tmp_path):
    rule = FileRule(path="/srv/shop-cache/*.php", perms="rw")
    by = accepted(tmp_path, [DataDir(path="/srv/shop-cache", why="compiled templates"), rule],
                  [WriteException(path=rule.path, why="Smarty compiles templates to PHP")])
    assert "# data dir (Hostile): /srv/shop-cache: compiled templates" in by["shop"].text


def test_a_data_dir_in_a_system_directory(tmp_path):
    p = refused(tmp_path, [DataDir(path="/etc/cron.d", why="no"), FileRule(path="/etc/cron.d/x", perms="w")])
    assert "data dir /etc/cron.d is inside a system directory (Hostile)" in p


def test_a_data_dir_inside_another_pools_root(tmp_path):
    p = refused(tmp_path, [DataDir(path=BLOG + "/cache", why="no"), FileRule(path=BLOG + "/cache/x", perms="w")])
    assert f"reaches pool blog's root {BLOG}" in p


def test_another_pools_local_file(tmp_path):
    from php_fpm_apparmor.policy import IncludeRule
    # The plugin boundary refuses it first (a plugin includes abstractions/ only) ...
    result = generate.plan(str(tree(tmp_path)), plugins_mod.load(
        entry_points=[], extra=[hostile([IncludeRule(name="local/php-fpm.d/blog")], ())]))
    by = {e.pool.name: e for e in result.entries}
    assert by["blog"] in result.ready and "plugin Hostile" in by["shop"].problem
    # ... and the closed list still refuses it in any rendered text, whatever wrote it.
    e = by["blog"]
    text = e.text.replace("include if exists <local/php-fpm.d/blog>", "include if exists <local/php-fpm.d/shop>")
    assert text != e.text
    problems = invariants.check(e.policy, text).problems
    assert any("includes another profile's local file" in p for p in problems), problems


# --- finding 6: one case-insensitive list of code names -----------------------------------

@pytest.mark.parametrize("glob", ["/up/*.PHP", "/up/*.php7", "/up/*.pht", "/**.php5", "/up/*.Phtml",
                                  "/up/.user.ini", "/up/*.inc", "/up/{a,b}.phar"])
def test_code_names_in_any_case_are_refused(tmp_path, glob):
    p = refused(tmp_path, [FileRule(path=under(SHOP, glob), perms="w")])
    assert "no plugin declared this exception" in p


def test_the_deny_globs_and_the_check_use_one_list(tmp_path):
    from php_fpm_apparmor import evaluate
    from php_fpm_apparmor.policy import CODE_EXTENSIONS, CODE_FILES
    conf = tmp_path / CONFIG
    root = tree(tmp_path)
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text("[shop]\nwrite = /srv/shop-files\n")
    result = generate.plan(str(root), plugins_mod.load(entry_points=[]))
    assert not result.problems, result.problems
    hat = evaluate.parse(next(e for e in result.entries if e.pool.name == "shop").text)["php-fpm//shop"]
    names = [f"x.{e.replace('[0-9]', '7')}" for e in CODE_EXTENSIONS] + list(CODE_FILES)
    for name in names + [n.upper() for n in names]:
        assert not evaluate.allows(hat, "write", f"/srv/shop-files/a/{name}"), name
        assert not evaluate.allows(hat, "write", f"/tmp/{name}"), name  # PHP's temp dir too
    assert evaluate.allows(hat, "write", "/srv/shop-files/a/report.pdf")


# --- finding 7: other pools are more than their roots -------------------------------------

def cloud_tree(tmp_path, conf: str):
    root = make_tree(tmp_path, {
        "blog": pool_conf("blog", BLOG, hat="blog"),
        "cloud": pool_conf("cloud", "/var/www/cloud", hat="cloud",
                           extra="php_admin_value[session.save_path] = /srv/sessions/cloud\n"),
    })
    nextcloud(root, "/var/www/cloud", data="/srv/cloud-data")
    (root / CONFIG).parent.mkdir(parents=True, exist_ok=True)
    (root / CONFIG).write_text(conf)
    return root


@pytest.mark.parametrize("path, what", [("/srv/cloud-data", "data dir (nextcloud) /srv/cloud-data"),
                                        ("/srv/sessions/cloud", "session dir /srv/sessions/cloud")])
def test_the_admins_read_into_another_pool_is_refused(tmp_path, path, what):
    root = cloud_tree(tmp_path, f"[blog]\nread = {path}\n")
    result = generate.plan(str(root), plugins_mod.load())
    by = {e.pool.name: e for e in result.entries}
    assert by["cloud"].problem is None, by["cloud"].problem
    assert by["blog"].problem and f"reaches pool cloud's {what}" in by["blog"].problem
    assert "(config: " in by["blog"].problem


def test_share_lets_the_admin_cross_and_check_lists_it(tmp_path):
    root = cloud_tree(tmp_path, "[blog]\nread = /srv/cloud-data/public\nshare = /srv/cloud-data/public\n")
    pm = plugins_mod.load()
    result = generate.plan(str(root), pm)
    assert not result.problems, result.problems
    blog = next(e for e in result.entries if e.pool.name == "blog")
    assert blog.crossings and "reaches pool cloud's data dir (nextcloud) /srv/cloud-data" in blog.crossings[0]
    found = check.findings(argparse.Namespace(root=str(root), json=False), pm)
    assert any(f.startswith("note: ") and "share = " in f and "pool blog" in f for f in found), found
    assert not any("is not a setting" in f for f in found)


def test_share_covers_only_what_it_names(tmp_path):
    root = cloud_tree(tmp_path, "[blog]\nread = /srv\nshare = /srv/cloud-data\n")
    result = generate.plan(str(root), plugins_mod.load())
    blog = next(e for e in result.entries if e.pool.name == "blog")
    assert blog.problem and "reaches pool cloud's session dir /srv/sessions/cloud" in blog.problem


def test_a_plugin_rule_cannot_use_the_admins_share(tmp_path):
    (tmp_path / CONFIG).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / CONFIG).write_text("[shop]\nshare = /srv/sessions/blog\n")
    p = refused(tmp_path, [FileRule(path="/srv/sessions/blog/*", perms="r")])
    assert "reaches pool blog's session dir" in p


# --- the plain function, as plugin authors call it -----------------------------------------

def test_check_one_policy_directly(tmp_path):
    result = generate.plan(str(tree(tmp_path)), plugins_mod.load(entry_points=[], extra=[hostile(
        [FileRule(path="/etc/cron.d/x", perms="w")])]), check=False)
    shop = next(e for e in result.entries if e.pool.name == "shop")
    report = invariants.check(shop.policy, render.render(shop.policy))
    assert len(report.problems) == 1 and "/etc/cron.d/x" in report.problems[0]
    others = invariants.Index.of([e for e in result.entries if e is not shop])
    assert others.owner("/srv/sessions/blog/sess_x").pool == "blog"
    assert [o.pool for o, _ in invariants.crossing("/srv/sessions/*/sess_*", others)] == ["blog"]
    assert invariants.crossing(lit(SHOP) + "/**", others) == []


def test_the_admins_local_file_crosses_only_with_share(tmp_path):
    root = cloud_tree(tmp_path, "")
    local = root / "etc/apparmor.d/local/php-fpm.d/blog"
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_text("# fonts\n/srv/fonts/** r,\n  owner /srv/cloud-data/** r,  # added by hand\n")
    result = generate.plan(str(root), plugins_mod.load())
    blog = next(e for e in result.entries if e.pool.name == "blog")
    assert blog.problem and "reaches pool cloud's data dir (nextcloud) /srv/cloud-data" in blog.problem
    assert "local/php-fpm.d/blog:3" in blog.problem
    (root / CONFIG).write_text("[blog]\nshare = /srv/cloud-data\n")
    result = generate.plan(str(root), plugins_mod.load())
    assert not result.problems, result.problems
    blog = next(e for e in result.entries if e.pool.name == "blog")
    assert any("local/php-fpm.d/blog:3; share = in its section" in c for c in blog.crossings), blog.crossings


def test_a_pattern_nobody_can_read_is_refused_not_a_crash(tmp_path):
    p = refused(tmp_path, [FileRule(path=under(SHOP, "/x[ab"), perms="w")])
    assert f"{SHOP}/x[ab cannot be checked" in p and "unclosed [" in p


def test_a_refused_pools_paths_stay_its_own(tmp_path):
    root = make_tree(tmp_path, {
        "blog": pool_conf("blog", BLOG, hat="blog"),
        "shop": pool_conf("shop", SHOP, hat="shop"),
        "wide": pool_conf("wide", "/var/www/wide", hat="wide"),
    })
    (root / CONFIG).parent.mkdir(parents=True, exist_ok=True)
    (root / CONFIG).write_text("[wide]\nread = /var/www/shop\n")
    plugin = hostile([CapabilityRule(name="sys_admin")])  # shop is refused for this
    result = generate.plan(str(root), plugins_mod.load(entry_points=[], extra=[plugin]))
    by = {e.pool.name: e for e in result.entries}
    assert by["shop"].problem and by["blog"].problem is None
    assert by["wide"].problem and f"reaches pool shop's root {SHOP}" in by["wide"].problem


def test_an_exception_for_a_whole_php_temp_dir_lifts_its_deny(tmp_path):
    from php_fpm_apparmor import evaluate
    whole = WriteException(path="/tmp/**", why="the app compiles templates into PHP's temp dir")
    by = accepted(tmp_path, [], [whole])
    hat = evaluate.parse(by["shop"].text)["php-fpm//shop"]
    assert evaluate.allows(hat, "write", "/tmp/cache.php")  # the deny is lifted for this pool
    blog = evaluate.parse(by["blog"].text)["php-fpm//blog"]
    assert not evaluate.allows(blog, "write", "/tmp/cache.php")  # not for the others
    narrow = WriteException(path="/tmp/twig/**", why="narrower: the dir's deny stays")
    by = accepted(tmp_path / "n", [], [narrow])
    hat = evaluate.parse(by["shop"].text)["php-fpm//shop"]
    assert not evaluate.allows(hat, "write", "/tmp/cache.php")


def test_the_admins_local_rule_that_writes_code_is_said_not_refused(tmp_path, cli):
    """Root wrote it, so the pool keeps it; `check` says what it opens."""
    root = cloud_tree(tmp_path, "")
    blog_root = next(e for e in generate.plan(str(root), plugins_mod.load()).entries
                     if e.pool.name == "blog").site.roots[0]
    local = root / "etc/apparmor.d/local/php-fpm.d/blog"
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_text(f"{blog_root}/fonts/*.ttf w,\n  owner {blog_root}/plugins/** rw,  # an updater\n")
    result = generate.plan(str(root), plugins_mod.load())
    blog = next(e for e in result.entries if e.pool.name == "blog")
    assert not blog.problem, blog.problem
    assert len(blog.local_code) == 1, blog.local_code
    assert "local/php-fpm.d/blog:2" in blog.local_code[0] and "write code" in blog.local_code[0]
    proc = cli("check", root=root)
    said = f"warning: pool blog: /etc/apparmor.d/local/php-fpm.d/blog:2: `owner {blog_root}/plugins/** rw,"
    assert said in proc.stdout, proc.stdout + proc.stderr

"""The demo tree through the whole pipeline (pool reader, sites, plugins, render, invariants):
every app table row holds for the pool that serves the apps together, statically; the
same rows run in a real kernel in test_plugin_vm.py."""

import shutil
from pathlib import Path

import pytest

import apptrees as at
from php_fpm_apparmor import evaluate, generate
from test_plugin_vm import TABLES

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    tree = tmp_path_factory.mktemp("demo") / "tree"
    shutil.copytree(REPO / "demo", tree, symlinks=True)
    result = generate.plan(str(tree), at.first_party())
    return tree, result


def entry(result, pool):
    return next(e for e in result.entries if e.pool.name == pool)


def test_every_demo_pool_gets_a_policy(plan):
    tree, result = plan
    assert result.problems == []
    assert sorted(e.hat for e in result.ready) == ["blog", "cloud", "plain", "web1"]
    apps = {e.pool.name: sorted(a.name for a in e.policy.apps) for e in result.ready}
    assert apps == {"blog": ["webp-express", "wordpress", "wp-super-cache"], "cloud": ["nextcloud"],
                    "plain": [], "web1": []}
    web1 = entry(result, "web1")
    assert web1.pool.version == "8.1" and web1.site.roots == ["/var/www/clients/client1/web1/web"]


@pytest.mark.parametrize("pool", ["blog", "cloud"])
def test_tables_hold_for_the_pool_serving_the_apps_together(plan, pool):
    tree, result = plan
    e = entry(result, pool)
    places, rows = TABLES[pool]
    wrong = []
    for row in rows:
        exp = row.resolve(**places)
        if at.judge(e.text, e.hat, exp, str(tree)) != (exp.expect == "allow"):
            wrong.append(f"{exp.op} {exp.argv or exp.target}: expected {exp.expect} ({exp.why})")
    assert not wrong, "\n".join(wrong)


def test_plain_and_panel_pools_get_nothing_from_app_plugins(plan):
    tree, result = plan
    for pool in ("plain", "web1"):
        e = entry(result, pool)
        sources = {r.source for p in e.policy.profiles for r in p.rules}
        assert not sources & {"wordpress", "webp_express", "wp_super_cache", "nextcloud"}
        hat = evaluate.parse(e.text)[f"php-fpm//{e.hat}"]
        assert not evaluate.allows(hat, "read", "/var/www/blog/wp-config.php")
        assert not evaluate.allows(hat, "read", "/srv/nextcloud-data/nextcloud.log")


def test_cloud_pool_cannot_touch_the_blog_and_back(plan):
    tree, result = plan
    blog = evaluate.parse(entry(result, "blog").text)["php-fpm//blog"]
    cloud = evaluate.parse(entry(result, "cloud").text)["php-fpm//cloud"]
    assert not evaluate.allows(blog, "read", "/srv/nextcloud-data/alice/files/a.txt")
    assert not evaluate.allows(blog, "read", "/var/www/cloud/config/config.php")
    assert not evaluate.allows(cloud, "write", "/var/www/blog/wp-content/uploads/a.jpg")

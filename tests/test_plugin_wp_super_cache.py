"""WP Super Cache: cache writes, exactly the PHP cache files it writes, config writes on demand."""

import pytest

import apptrees as at
from apptrees import needs_parser
from php_fpm_apparmor import evaluate
from php_fpm_apparmor_plugins import wp_super_cache

pytestmark = pytest.mark.skipif(at.wordpress_source() is None, reason="no WordPress tree available")

C = "/var/www/blog/wp-content"


def build(tmp_path, settings=None, cache_config=None):
    root = at.wordpress(tmp_path, "/var/www/blog")
    at.wp_super_cache(root)
    if cache_config is not None:
        (root / "wp-content/wp-cache-config.php").write_text(cache_config)
    s = at.site(tmp_path, "blog", ["/var/www/blog"], settings=settings)
    return (s,) + at.build(s)


def test_detected_with_version_and_config(tmp_path):
    s, found, pol, text = build(tmp_path)
    app = next(a for a in found if a.name == "wp-super-cache")
    assert app.version == "1.12.4"
    assert app.info["cache"] == C + "/cache"
    assert app.info["prefix"] == "wp-cache-"
    assert app.info["wp_cache"] is True


def test_wp_cache_off_in_wp_config_is_said(tmp_path):
    """WP_CACHE comes from the WordPress plugin's reading of wp-config.php: off there, the
    plugin says the cache is not set up."""
    root = at.wordpress(tmp_path, "/var/www/blog")
    at.wp_super_cache(root)
    cfg = root / "wp-config.php"
    cfg.write_text(cfg.read_text().replace("define( 'WP_CACHE', true );", "define( 'WP_CACHE', false );"))
    s = at.site(tmp_path, "blog", ["/var/www/blog"])
    found, pol, text = at.build(s)
    app = next(a for a in found if a.name == "wp-super-cache")
    assert app.info["wp_cache"] is False and next(a for a in found if a.name == "wordpress").info["wp_cache"] is False
    assert any("not set up" in line for line in wp_super_cache.php_fpm_apparmor_check(s, app))


@pytest.fixture(scope="module")
def default(tmp_path_factory):
    return build(tmp_path_factory.mktemp("blog"))


@pytest.mark.parametrize("row", wp_super_cache.EXPECTATIONS, ids=lambda r: f"{r.op}-{r.expect}-{r.target}")
def test_expectations_static(default, row):
    s, found, pol, text = default
    exp = row.resolve(root="/var/www/blog", content=C, other="/var/www/other", data="/nowhere")
    assert at.judge(text, "blog", exp, s.sysroot) == (exp.expect == "allow"), exp.why


def test_php_cache_files_are_one_named_exception(tmp_path):
    s, found, pol, text = build(tmp_path)
    exc = [e for e in pol.exceptions if e.source == "wp_super_cache"]
    assert [e.path for e in exc] == [C + "/cache/supercache/**/{,meta-}wp-cache-[0-9a-f]*.php"]
    assert "die()" in exc[0].why
    assert at.invariant_problems((s, pol, text)) == []
    pol.exceptions[:] = [e for e in pol.exceptions if e.source != "wp_super_cache"]
    assert at.invariant_problems((s, pol, text)), "the exception is load-bearing"


def test_config_writes_flag(tmp_path):
    s, found, pol, text = build(tmp_path, settings={"config_writes": "yes"})
    hat = evaluate.parse(text)["php-fpm//blog"]
    assert evaluate.allows(hat, "write", C + "/wp-cache-config.php")
    assert evaluate.allows(hat, "write", C + "/advanced-cache.php")
    assert evaluate.allows(hat, "write", "/var/www/blog/wp-config.php")
    assert evaluate.allows(hat, "write", C + "/cache/0123456789abcdef0123456789abcdefAbC123.php")
    assert not evaluate.allows(hat, "write", C + "/cache/shell.php")
    assert at.invariant_problems((s, pol, text)) == []
    app = next(a for a in found if a.name == "wp-super-cache")
    assert not any("config_writes is off" in f for f in wp_super_cache.php_fpm_apparmor_check(s, app))


def test_custom_file_prefix_and_hostile_cache_path(tmp_path):
    config = at.WP_CACHE_CONFIG.replace("'wp-cache-'", "'site1-'").replace(
        "WP_CONTENT_DIR . '/cache/'", "'/etc/'")
    s, found, pol, text = build(tmp_path, cache_config=config)
    app = next(a for a in found if a.name == "wp-super-cache")
    assert app.info["prefix"] == "site1-"
    assert app.info["cache"] == C + "/cache"  # /etc refused
    findings = wp_super_cache.php_fpm_apparmor_check(s, app)
    assert any("$cache_path" in f and "/etc" in f for f in findings)
    hat = evaluate.parse(text)["php-fpm//blog"]
    assert evaluate.allows(hat, "write", C + "/cache/supercache/h/p/site1-0123abcd.php")
    assert not evaluate.allows(hat, "write", C + "/cache/supercache/h/p/wp-cache-0123abcd.php")
    assert not evaluate.allows(hat, "write", "/etc/supercache/x/index.html")


def test_not_set_up_is_reported(tmp_path):
    root = at.wordpress(tmp_path, "/var/www/blog")
    (root / "wp-content/plugins/wp-super-cache").mkdir(parents=True)
    (root / "wp-content/plugins/wp-super-cache/wp-cache.php").write_text(at.WP_SUPER_CACHE_HEADER)
    s = at.site(tmp_path, "blog", ["/var/www/blog"])
    found, pol, text = at.build(s)
    app = next(a for a in found if a.name == "wp-super-cache")
    assert any("not set up" in f for f in wp_super_cache.php_fpm_apparmor_check(s, app))


@needs_parser
def test_compiles(tmp_path):
    s, found, pol, text = build(tmp_path, settings={"config_writes": "yes", "code_writes": "yes"})
    assert at.compile_error(text, "blog", s.sysroot) is None

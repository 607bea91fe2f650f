"""phpMyAdmin from Debian's real package: the plugin claims /usr/share/phpmyadmin as the
pool's root (the core alone took /var/lib/phpmyadmin from open_basedir and refused the
pool), detects it, and the hat holds what the EXPECTATIONS table says, statically,
through the real CLI and compiled by apparmor_parser.

Written with the shipped helpers (php_fpm_apparmor.testing) only, as a third party would.
"""

import pytest

import apptrees as at
from php_fpm_apparmor import evaluate, generate, plugins as plugins_mod, testing
from php_fpm_apparmor_plugins import phpmyadmin
from systree import make_tree, pool_conf

pytestmark = pytest.mark.skipif(at.phpmyadmin_source() is None, reason="phpmyadmin package not available")

POOL_EXTRA = (f"php_admin_value[open_basedir] = {at.PMA_OPEN_BASEDIR}\n"
              "php_admin_value[upload_tmp_dir] = /var/lib/phpmyadmin/tmp\n")


def pma_tree(tmp_path):
    root = make_tree(tmp_path, {"pma": pool_conf("pma", "/usr/share/phpmyadmin", hat="pma", extra=POOL_EXTRA),
                                "blog": pool_conf("blog", "/var/www/blog", hat="blog")}, sites=False)
    (root / "var/www/blog").mkdir(parents=True)
    (root / "var/www/blog/index.php").write_text("<?php echo 1;\n")
    at.phpmyadmin(root)
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = pma_tree(tmp_path_factory.mktemp("pma"))
    result = generate.plan(str(root), testing.plugins())
    return root, {e.pool.name: e for e in result.entries}


def test_the_plugin_claims_debians_root_and_detects_the_app(built):
    root, entries = built
    e = entries["pma"]
    assert not e.problem, e.problem
    assert e.site.roots == ["/usr/share/phpmyadmin"]
    assert e.site.origin == "claimed by plugin phpmyadmin"
    [app] = e.policy.apps
    assert (app.name, app.version) == ("phpmyadmin", "5.2.1")
    assert app.info == {"temp": "/var/lib/phpmyadmin/tmp", "config_dir": "/etc/phpmyadmin"}


def test_without_the_plugin_the_core_alone_cannot_serve_it(tmp_path):
    """What the plugin fixes: open_basedir's /var/lib/phpmyadmin taken as the root."""
    root = pma_tree(tmp_path)
    eps = [ep for ep in plugins_mod.metadata.entry_points(group="php_fpm_apparmor") if ep.name != "phpmyadmin"]
    result = generate.plan(str(root), plugins_mod.load(entry_points=eps, external=False))
    e = next(e for e in result.entries if e.pool.name == "pma")
    assert e.site.roots == ["/var/lib/phpmyadmin"]
    # PHP's temp dir never takes code without a plugin's exception: the core alone denies
    # the Twig cache there (the pool is not refused; phpMyAdmin fails, audited).
    hat = evaluate.parse(e.text)["php-fpm//pma"]
    assert not evaluate.allows(hat, "write", "/var/lib/phpmyadmin/tmp/twig/3c/3c1e.php")
    assert "/usr/share/phpmyadmin" not in e.text


@pytest.mark.parametrize("row", phpmyadmin.EXPECTATIONS, ids=lambda r: f"{r.op}-{r.expect}-{r.target}")
def test_expectations_static(built, row):
    root, entries = built
    e = entries["pma"]
    b = testing.Built(e.site, e.policy.apps, e.policy, e.text)
    assert testing.failed_expectations(b, [row], root="/usr/share/phpmyadmin", other="/var/www/blog") == []


def test_the_twig_cache_is_a_declared_exception_and_the_generator_agrees(built):
    root, entries = built
    e = entries["pma"]
    assert [(x.path, x.source) for x in e.policy.exceptions] == [("/var/lib/phpmyadmin/tmp/**", "phpmyadmin")]
    b = testing.Built(e.site, e.policy.apps, e.policy, e.text)
    other = testing.Built(entries["blog"].site, [], entries["blog"].policy, entries["blog"].text)
    assert testing.problems(b, other) == []


@at.needs_parser
def test_compiles_with_the_real_parser(built):
    root, entries = built
    e = entries["pma"]
    assert testing.compile_error(testing.Built(e.site, e.policy.apps, e.policy, e.text)) is None


def test_generate_through_the_cli_writes_both_hats(tmp_path, cli):
    root = pma_tree(tmp_path)
    proc = cli("generate", root=root, env={plugins_mod.NO_EXTERNAL_ENV: "1"})
    assert proc.returncode == 0, proc.stderr
    text = (root / "etc/apparmor.d/php-fpm.d/pma").read_text()
    assert '"/usr/share/phpmyadmin/**" r,' in text
    assert '"/etc/phpmyadmin/{,**}" r,' in text
    assert "phpmyadmin" not in (root / "etc/apparmor.d/php-fpm.d/blog").read_text()
    proc = cli("--json", "status", root=root, env={plugins_mod.NO_EXTERNAL_ENV: "1"})
    import json
    rows = {r["pool"]: r for r in json.loads(proc.stdout)}
    assert rows["pma"]["apps"] == ["phpmyadmin 5.2.1"] and rows["pma"]["site_root"] == ["/usr/share/phpmyadmin"]


def test_upstream_tarball_in_a_web_root_keeps_its_temp_dir_inside_and_is_told(tmp_path):
    src = at.phpmyadmin_source() / "usr/share/phpmyadmin"
    import shutil
    dest = tmp_path / "var/www/pma"
    shutil.copytree(src, dest, symlinks=True)
    vc = dest / "libraries/vendor_config.php"
    vc.write_text(vc.read_text().replace("'/var/lib/phpmyadmin/tmp/'", "ROOT_PATH . 'tmp' . DIRECTORY_SEPARATOR")
                  .replace("'/etc/phpmyadmin/config.inc.php'", "ROOT_PATH . 'config.inc.php'"))
    s = testing.site(tmp_path, "pma", ["/var/www/pma"])
    b = testing.build(s, testing.plugins())
    [app] = b.apps
    assert app.info == {"temp": "/var/www/pma/tmp", "config_dir": None}
    findings = testing.plugins().call("php_fpm_apparmor_check", site=s, app=app)
    assert any("inside its web root" in f for f in findings)


@pytest.mark.parametrize("temp", ["'/var/lib/phpmyadmin/tmp/'", "'/home/alice/'"])
def test_a_sites_own_copy_cannot_name_debians_config_or_a_temp_dir_outside_it(tmp_path, temp):
    """A phpMyAdmin copied into a web root keeps Debian's vendor_config.php, or its owner
    edits it: that file is the site user's. Its configFile must not open /etc/phpmyadmin
    (config-db.php: the database password) nor the secret in /var/lib/phpmyadmin, and its
    tempDir must not make a directory outside the site the pool's own (writable, excepted
    for PHP)."""
    src = at.phpmyadmin_source() / "usr/share/phpmyadmin"
    import shutil
    dest = tmp_path / "var/www/pma"
    shutil.copytree(src, dest, symlinks=True)
    vc = dest / "libraries/vendor_config.php"
    text = vc.read_text()
    assert "'/etc/phpmyadmin/config.inc.php'" in text and "'/var/lib/phpmyadmin/tmp/'" in text
    vc.write_text(text.replace("'/var/lib/phpmyadmin/tmp/'", temp))
    (tmp_path / "home/alice").mkdir(parents=True)
    s = testing.site(tmp_path, "pma", ["/var/www/pma"])
    b = testing.build(s, testing.plugins())
    hat = evaluate.parse(b.text)["php-fpm//pma"]
    for path in ("/etc/phpmyadmin/config-db.php", "/var/lib/phpmyadmin/blowfish_secret.inc.php"):
        assert not evaluate.allows(hat, "read", path), path
    for path in ("/var/lib/phpmyadmin/tmp/twig/x.php", "/home/alice/x.php", "/home/alice/notes.txt"):
        assert not evaluate.allows(hat, "write", path), path
    assert b.policy.data_dirs == []
    findings = testing.plugins().call("php_fpm_apparmor_check", site=s, app=b.apps[0])
    assert any("is not usable (outside this copy's tree" in f for f in findings), findings


def test_trace_shows_which_plugin_answered_what(tmp_path, cli):
    root = pma_tree(tmp_path)
    env = {plugins_mod.NO_EXTERNAL_ENV: "1"}
    proc = cli("plugins", "--trace", "pma", root=root, env=env)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0] == "pool 8.2/pma (hat pma): ok"
    assert "  roots      phpmyadmin: /usr/share/phpmyadmin" in out
    assert "  detect     phpmyadmin: phpmyadmin 5.2.1 at /usr/share/phpmyadmin" in out
    assert any(l.startswith("  rules      phpmyadmin [phpmyadmin]: hat: \"/etc/phpmyadmin/{,**}\" r,") for l in out), out
    assert any(l.startswith("  exceptions phpmyadmin [phpmyadmin]: exception /var/lib/phpmyadmin/tmp/**") for l in out)
    assert not any("wordpress" in l for l in out)  # plugins that answered [] are left out
    proc = cli("--json", "plugins", "--trace", "8.2/pma", root=root, env=env)
    import json
    records = json.loads(proc.stdout)
    assert {r["hook"] for r in records} == {"roots", "detect", "rules", "exceptions"}
    assert cli("plugins", "--trace", "nope", root=root, env=env).returncode == 2


def test_status_text_shows_each_pools_exceptions(tmp_path, cli):
    root = pma_tree(tmp_path)
    # status only reads: the exceptions shown are those of the installed hats
    cli("generate", root=root, env={plugins_mod.NO_EXTERNAL_ENV: "1"})
    proc = cli("status", root=root, env={plugins_mod.NO_EXTERNAL_ENV: "1"})
    assert ("exception 8.2/pma: /var/lib/phpmyadmin/tmp/** (phpmyadmin: Twig compiles phpMyAdmin's "
            "templates to PHP in tempDir/twig and includes them)") in proc.stdout.splitlines(), proc.stdout


def test_the_admins_root_wins_over_the_plugins_claim(tmp_path):
    root = pma_tree(tmp_path)
    conf = root / "etc/php-fpm-apparmor/php-fpm-apparmor.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text("[pma]\nroot = /var/www/blog\n")
    e = next(e for e in generate.plan(str(root), testing.plugins()).entries if e.pool.name == "pma")
    assert e.site.roots == ["/var/www/blog"] and e.site.origin == "root = in [pma]"

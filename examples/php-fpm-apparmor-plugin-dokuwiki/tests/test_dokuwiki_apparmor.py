"""The plugin's own tests: only the installed php-fpm-apparmor and its shipped helpers."""

import pytest

import dokuwiki_apparmor
from php_fpm_apparmor import testing

ROOT = "/var/www/wiki"


def wiki(tmp_path, **settings):
    disk = tmp_path / ROOT.lstrip("/")
    for d in ("inc", "conf", "data/pages", "data/media", "data/cache"):
        (disk / d).mkdir(parents=True, exist_ok=True)
    (disk / "doku.php").write_text("<?php\nrequire_once 'inc/init.php';\n")
    (disk / "inc/init.php").write_text("<?php\n")
    (disk / "VERSION").write_text('2024-02-06b "Kaos"\n')
    (disk / "conf/users.auth.php").write_text("# <?php exit()?>\n")
    site = testing.site(tmp_path, "wiki", [ROOT], settings=settings)
    return testing.build(site, testing.plugins(dokuwiki_apparmor))


def test_detected_with_its_version(tmp_path):
    built = wiki(tmp_path)
    assert [(a.name, a.version) for a in built.apps] == [("dokuwiki", "2024-02-06b")]


@pytest.mark.parametrize("row", dokuwiki_apparmor.EXPECTATIONS, ids=lambda r: f"{r.op}-{r.expect}-{r.target}")
def test_expectations(tmp_path, row):
    assert testing.failed_expectations(wiki(tmp_path), [row], root=ROOT, other="/var/www/other") == []


def test_config_writes_opens_local_php_only(tmp_path):
    built = wiki(tmp_path, config_writes="yes")
    row = [r for r in dokuwiki_apparmor.EXPECTATIONS if r.target == "{root}/conf/local.php"][0]
    assert testing.failed_expectations(built, [row], root=ROOT) != []  # now allowed
    assert testing.problems(built) == []


def test_the_generator_accepts_it_and_the_parser_compiles_it(tmp_path):
    built = wiki(tmp_path)
    assert testing.problems(built) == []
    assert testing.problems(built, core=False) == []
    try:
        assert testing.compile_error(built) is None
    except RuntimeError as exc:  # no apparmor_parser on this machine
        pytest.skip(str(exc))

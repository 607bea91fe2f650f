"""WebP Express: converters confined in the webp child, like the blog's myblogdash profile."""

import pytest

import apptrees as at
from apptrees import needs_parser
from php_fpm_apparmor import evaluate
from php_fpm_apparmor_plugins import webp_express

pytestmark = pytest.mark.skipif(at.wordpress_source() is None, reason="no WordPress tree available")

C = "/var/www/blog/wp-content"


@pytest.fixture(scope="module")
def blog(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("blog")
    root = at.wordpress(tmp_path, "/var/www/blog")
    at.webp_express(root)
    s = at.site(tmp_path, "blog", ["/var/www/blog"])
    found, pol, text = at.build(s)
    return s, found, pol, text


def test_detected_with_version_from_header(blog):
    s, found, pol, text = blog
    app = next(a for a in found if a.name == "webp-express")
    assert app.version == "0.25.15"
    assert app.info["dir"] == C + "/webp-express"


def test_not_detected_without_wordpress(tmp_path):
    # the plugin files alone, no WordPress around them: nothing to plug into
    root = tmp_path / "var/www/x"
    at.webp_express(root)
    found, _, _ = at.build(at.site(tmp_path, "x", ["/var/www/x"]))
    assert found == []


@pytest.mark.parametrize("row", webp_express.EXPECTATIONS, ids=lambda r: f"{r.op}-{r.expect}-{r.argv or r.target}")
def test_expectations_static(blog, row):
    s, found, pol, text = blog
    exp = row.resolve(root="/var/www/blog", content=C, other="/var/www/other", data="/nowhere")
    assert at.judge(text, "blog", exp, s.sysroot) == (exp.expect == "allow"), exp.why


def test_webp_child_reads_only_images_and_writes_only_webp(blog):
    s, found, pol, text = blog
    child = evaluate.parse(text)["php-fpm//blog_webp"]
    assert evaluate.allows(child, "read", C + "/uploads/2026/11/cat.jpg")
    assert evaluate.allows(child, "read", C + "/uploads/2026/11/IMG_1.JPEG")
    assert evaluate.allows(child, "read", C + "/themes/t/screenshot.png")
    assert not evaluate.allows(child, "read", "/var/www/blog/wp-config.php")
    assert not evaluate.allows(child, "read", "/var/www/blog/wp-admin/options-general.php")
    assert not evaluate.allows(child, "read", "/etc/shadow")
    assert evaluate.allows(child, "write", C + "/webp-express/webp-images/doc-root/a/cat.jpg.webp")
    assert evaluate.allows(child, "write", C + "/uploads/2026/11/cat.jpg.webp")
    assert not evaluate.allows(child, "write", C + "/uploads/2026/11/cat.jpg")
    assert not evaluate.allows(child, "write", C + "/webp-express/webp-images/x.php")
    assert not evaluate.allows(child, "write", C + "/webp-express/config/config.a1b2c3.json")


def test_shell_child_is_shared_and_gains_only_exec_rules(blog):
    s, found, pol, text = blog
    profiles = evaluate.parse(text)
    sh = profiles["php-fpm//blog_sh"]
    # mail() still works through the same shell child
    assert evaluate.exec_transition(sh, "/usr/sbin/sendmail")[1] == "php-fpm//_sendmail"
    assert evaluate.exec_transition(sh, "/usr/bin/cwebp")[1] == "php-fpm//blog_webp"
    assert evaluate.exec_transition(sh, "/usr/bin/nice")[1] == "php-fpm//blog_webp"
    bundled = (C + "/plugins/webp-express/vendor/rosell-dk/webp-convert/src/Convert/Converters/"
               "Binaries/cwebp-120-linux-x86-64")
    assert evaluate.exec_transition(sh, bundled)[1] == "php-fpm//blog_webp"
    assert evaluate.exec_transition(sh, "/usr/bin/bash") is None
    assert not evaluate.allows(sh, "read", C + "/uploads/2026/11/cat.jpg")
    assert not evaluate.allows(sh, "write", C + "/uploads/2026/11/cat.jpg.webp")
    # exactly one exec rule per path per profile: no conflicting transitions
    for name, prof in profiles.items():
        seen = {}
        for rule in prof.ours:
            if rule.exec_perms:
                key = rule.path.regex
                assert seen.setdefault(key, (rule.exec_perms, str(rule.target))) == \
                    (rule.exec_perms, str(rule.target)), (name, key)


def test_missing_config_index_php_is_a_named_one_file_exception(tmp_path):
    root = at.wordpress(tmp_path, "/var/www/blog")
    at.webp_express(root, with_index=False)
    s = at.site(tmp_path, "blog", ["/var/www/blog"])
    found, pol, text = at.build(s)
    exc = [e for e in pol.exceptions if e.source == "webp_express"]
    assert [e.path for e in exc] == [C + "/webp-express/config/index.php"]
    assert at.invariant_problems((s, pol, text)) == []
    hat = evaluate.parse(text)["php-fpm//blog"]
    assert evaluate.allows(hat, "write", C + "/webp-express/config/index.php")
    assert not evaluate.allows(hat, "write", C + "/webp-express/config/other.php")
    app = next(a for a in found if a.name == "webp-express")
    assert any("index.php is missing" in f for f in webp_express.php_fpm_apparmor_check(s, app))


def test_htaccess_rules_only_with_config_writes(tmp_path):
    root = at.wordpress(tmp_path, "/var/www/blog")
    at.webp_express(root)
    s = at.site(tmp_path, "blog", ["/var/www/blog"], settings={"config_writes": "yes"})
    found, pol, text = at.build(s)
    hat = evaluate.parse(text)["php-fpm//blog"]
    assert evaluate.allows(hat, "write", C + "/uploads/.htaccess")
    assert at.invariant_problems((s, pol, text)) == []
    _, _, plain = at.build(at.site(tmp_path, "blog", ["/var/www/blog"]))
    assert not evaluate.allows(evaluate.parse(plain)["php-fpm//blog"], "write", C + "/uploads/.htaccess")


def test_installed_converters_are_used_when_present(tmp_path):
    root = at.wordpress(tmp_path, "/var/www/blog")
    at.webp_express(root)
    for name in ("cwebp", "gm"):
        p = tmp_path / "usr/bin" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"\x7fELF")
    (tmp_path / "usr/bin/convert").symlink_to("/etc/alternatives/convert")
    (tmp_path / "etc/alternatives").mkdir(parents=True)
    (tmp_path / "etc/alternatives/convert").symlink_to("/usr/bin/convert-im6.q16")
    (tmp_path / "usr/bin/convert-im6.q16").write_bytes(b"\x7fELF")
    s = at.site(tmp_path, "blog", ["/var/www/blog"])
    found, pol, text = at.build(s)
    profiles = evaluate.parse(text)
    sh = profiles["php-fpm//blog_sh"]
    assert evaluate.exec_transition(sh, "/usr/bin/gm")[1] == "php-fpm//blog_webp"
    # AppArmor sees the resolved file behind the alternatives symlinks
    assert evaluate.exec_transition(sh, "/usr/bin/convert-im6.q16")[1] == "php-fpm//blog_webp"
    assert evaluate.exec_transition(sh, "/usr/bin/ffmpeg") is None  # not installed: no rule
    webp = profiles["php-fpm//blog_webp"]
    assert evaluate.allows(webp, "read", "/etc/ImageMagick-6/policy.xml")


@needs_parser
def test_compiles(blog):
    s, found, pol, text = blog
    assert at.compile_error(text, "blog", s.sysroot) is None

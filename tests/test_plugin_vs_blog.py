"""Side by side with the blog's hand-made profile (reference/securing-php-fpm-with-apparmor):
for the same WordPress + WebP Express + WP Super Cache site, every write or exec the plugins
grant beyond the blog's ^myblog hat and myblogdash profile must be justified by an allow
row of the plugins' EXPECTATIONS tables. Reads inside the site root are the core's
decision (it reads the whole root, the blog listed file types) and are not compared here.
Also prints the compile-time ratio of our pool file to the blog's whole profile.
"""

import re
import subprocess
import time
from pathlib import Path

import pytest

import apptrees as at
from php_fpm_apparmor import evaluate, validate
from php_fpm_apparmor_plugins import webp_express, wordpress, wp_super_cache

REFERENCE = Path("/work/shared/reference/securing-php-fpm-with-apparmor.txt")
R = "/var/www/example.com/wordpress"
C = R + "/wp-content"
pytestmark = [
    pytest.mark.skipif(not REFERENCE.is_file(), reason="the blog post is not available here"),
    pytest.mark.skipif(at.wordpress_source() is None, reason="no WordPress tree available"),
]


def blog_profile() -> str:
    text = REFERENCE.read_text()
    start = text.index("abi <abi/3.0>,")
    profile = text[start:text.index("Some advice", start)].rstrip() + "\n"
    # The post's hat points at "blogdash" but defines "myblogdash": its own typo.
    return profile.replace("//blogdash,", "//myblogdash,")


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    base = tmp_path_factory.mktemp("blog")
    root = at.wordpress(base, R)
    at.webp_express(root)
    at.wp_super_cache(root)
    s = at.site(base, "myblog", [R])
    found, pol, text = at.build(s)
    return text, {getattr(r, "path", None) for p in pol.profiles for r in p.rules if r.source != "core"}


def sample(pattern: str, limit: int = 64) -> list[str]:
    """Concrete paths a pattern matches: alternatives expanded, [xX] -> x, globs -> x."""
    out, todo = [], [evaluate.encode_pattern(pattern)]
    while todo and len(out) < limit:
        p = todo.pop()
        m = re.search(r"\{([^{}]*)\}", p)
        if m:
            todo += [p[:m.start()] + alt + p[m.end():] for alt in m.group(1).split(",")]
            continue
        p = re.sub(r"\[([^\]])[^\]]*\]", r"\1", p)
        p = p.replace("**", "x/x").replace("*", "x").replace("?", "x")
        out.append(evaluate.decode(p))
    return out


def allow_rows():
    places = dict(root=R, content=C, other="/var/www/other", data="/nowhere")
    return [r.resolve(**places) for m in (wordpress, webp_express, wp_super_cache)
            for r in m.EXPECTATIONS if r.expect == "allow"]


def justified(pattern: str, op: str, rows) -> bool:
    for r in rows:
        if r.op == op and evaluate.matches(pattern, r.target):
            return True
        if op == "write" and pattern.endswith("/"):  # creating a dir a row writes into
            parts = r.target.split("/")
            if any(evaluate.matches(pattern, "/".join(parts[:i]) + "/") for i in range(2, len(parts))):
                return True
        if r.op == "exec":
            words = " ".join(r.argv).split()
            if any(evaluate.matches(pattern, w) or evaluate.matches(pattern, "/usr/bin/" + w)
                   for w in words):
                return True
    return False


def test_grants_nothing_the_blog_lacks_without_a_table_row(ours):
    blog = blog_profile()
    body = blog[blog.index("{", blog.index("/usr/sbin/php-fpm8.2 {")) + 1: blog.rindex("}")]
    theirs = evaluate.parse(body)
    text, plugin_paths = ours
    mine = evaluate.parse(text)
    rows = allow_rows()
    unjustified, extra = [], []
    pairs = {"php-fpm//myblog": ["php-fpm//myblog"],
             "php-fpm//myblog_webp": ["php-fpm//myblogdash"],
             "php-fpm//myblog_sh": ["php-fpm//myblogdash"]}
    for name, counterparts in pairs.items():
        for rule in mine[name].ours:
            pattern = rule.path.regex
            if rule.exec_perms:
                ops = ["exec"]
            else:
                ops = [op for op, p in (("write", "w"),) if p in rule.perms]
            if not ops or pattern not in plugin_paths:
                continue  # the core's own rules (temp dirs, sendmail) are judged elsewhere
            for op in ops:
                for path in sample(pattern):
                    if op == "exec":
                        theirs_ok = any(evaluate.exec_transition(theirs[c], path) for c in counterparts)
                    else:
                        theirs_ok = any(evaluate.allows(theirs[c], op, path) for c in counterparts)
                    if theirs_ok:
                        continue
                    extra.append(f"{name} {op} {pattern}")
                    if not justified(pattern, op, rows):
                        unjustified.append(f"{name} {op} {pattern} (e.g. {path})")
                    break
    print("\n".join(["beyond the blog, justified by a table row:"] + sorted(set(extra))))
    assert not unjustified, "\n".join(unjustified)


def test_blog_writes_we_refuse_are_code_or_other_plugins(ours):
    """What the blog allowed and we do not: printed for review; none of WordPress's own media."""
    blog = blog_profile()
    body = blog[blog.index("{", blog.index("/usr/sbin/php-fpm8.2 {")) + 1: blog.rindex("}")]
    theirs = evaluate.parse(body)["php-fpm//myblog"]
    mine = evaluate.parse(ours[0])["php-fpm//myblog"]
    refused = []
    for rule in theirs.ours:
        if "w" in rule.perms:
            for path in sample(rule.path.regex, 8):
                if not evaluate.allows(mine, "write", path):
                    refused.append(path)
                    break
    print("\n".join(["the blog allowed, we refuse:"] + refused))
    for must in (C + "/uploads/2026/11/x.jpg", C + "/webp-express/webp-images/doc-root/x/a.jpg.webp",
                 C + "/cache/supercache/example.com/index.html.gz"):
        assert evaluate.allows(mine, "write", must)
    assert C + "/upgrade/x" in refused or any("/upgrade/" in p for p in refused)


def compile_best(path, runs=5) -> float:
    """Best of `runs` compiles (seconds) with the pinned features: the least noisy number."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([validate.parser(), "-Q", "-K", "-M", validate.FEATURES, str(path)],
                       check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return min(times)


@pytest.mark.skipif(validate.parser() is None, reason="apparmor_parser not installed")
def test_compile_time_ratio(ours, tmp_path):
    blog = tmp_path / "blog.profile"
    blog.write_text(blog_profile())
    body = tmp_path / "myblog"
    body.write_text(ours[0])
    wrapper = tmp_path / "ours.profile"
    wrapper.write_text(validate.WRAPPER.format(path=body))

    t_blog, t_ours = compile_best(blog), compile_best(wrapper)
    print(f"compile: blog's whole profile {t_blog:.3f} s, our pool file {t_ours:.3f} s, "
          f"ratio {t_ours / t_blog:.2f}")
    assert t_ours < 10 * t_blog  # a gross regression guard; the ratio itself is reported

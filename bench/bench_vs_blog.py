"""Our generated hat vs the blog's hand-made profile, same WordPress + WebP Express + WP
Super Cache site: compile time of each with the real apparmor_parser, and the ratio.

Issue 4 asks that ours compiles no slower. Usage: .venv/bin/python bench/bench_vs_blog.py
"""

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import apptrees as at  # noqa: E402
from php_fpm_apparmor import validate  # noqa: E402
from test_plugin_vs_blog import R, blog_profile, compile_best  # noqa: E402


def main():
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        root = at.wordpress(base, R)
        at.webp_express(root)
        at.wp_super_cache(root)
        _, _, text = at.build(at.site(base, "myblog", [R]))
        blog = base / "blog.profile"
        blog.write_text(blog_profile())
        body = base / "myblog"
        body.write_text(text)
        ours = base / "ours.profile"
        ours.write_text(validate.WRAPPER.format(path=body))
        t_blog, t_ours = compile_best(blog, 7), compile_best(ours, 7)
    print(f"blog's hand-made profile: {t_blog * 1e3:.0f} ms; our generated pool file (hat + "
          f"children, in a php-fpm parent): {t_ours * 1e3:.0f} ms")
    print(f"ratio ours/blog: {t_ours / t_blog:.2f} (<= 1.00 means no slower; the _sh/_sendmail "
          f"children every pool shares are compiled once per system, not per pool)")


if __name__ == "__main__":
    main()

"""Text + invariants for N WordPress pools: Python time and peak memory (issue 10, goal:
1,000 pools in < 2 s, peak < 300 MB).

Builds an ISPConfig-style tree (/var/www/clients/clientI/webI/web, chdir + open_basedir,
its own tmp for sessions and uploads), one WordPress per pool from its marker files, and
WebP Express + WP Super Cache in every third. Then times `generate.plan(check=False)`
(read, sites, apps, policy, render) and `invariants.check_plan` (the closed list, on
automata) separately, and the peak RSS of both. Nothing is asserted.

    .venv/bin/python bench/bench_invariants.py [N]
"""

import sys
import tempfile
import time
import resource
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from php_fpm_apparmor import generate, invariants, plugins  # noqa: E402
from systree import make_tree  # noqa: E402

WP_CONFIG = """<?php
define( 'DB_NAME', 'web{i}' );
define( 'DISALLOW_FILE_MODS', true );
$table_prefix = 'wp_';
if ( ! defined( 'ABSPATH' ) ) {{
\tdefine( 'ABSPATH', __DIR__ . '/' );
}}
require_once ABSPATH . 'wp-settings.php';
"""
WEBP = "<?php\n/**\n * Plugin Name: WebP Express\n * Version: 0.25.15\n */\n"
SUPER_CACHE = "<?php\n/*\n * Plugin Name: WP Super Cache\n * Version: 1.12.4\n */\n"
CACHE_CONFIG = "<?php\n$cache_path = WP_CONTENT_DIR . '/cache/';\n$file_prefix = 'wp-cache-';\n" \
               "$wp_cache_mutex_disabled = 1;\n"


def pool(i: int) -> str:
    d = f"/var/www/clients/client{i}/web{i}"
    return (f"[web{i}]\nuser = www-data\ngroup = www-data\nlisten = /run/php/web{i}.sock\n"
            f"pm = ondemand\npm.max_children = 5\napparmor_hat = web{i}\nchdir = {d}/web\n"
            f"php_admin_value[open_basedir] = {d}/web:{d}/private:{d}/tmp:/tmp\n"
            f"php_admin_value[session.save_path] = {d}/tmp\n"
            f"php_admin_value[upload_tmp_dir] = {d}/tmp\n")


def build(base: Path, n: int) -> Path:
    root = make_tree(base, {f"web{i}": pool(i) for i in range(n)})
    for i in range(n):
        web = root / f"var/www/clients/client{i}/web{i}/web"
        (web / "wp-includes").mkdir(parents=True, exist_ok=True)
        (web / "wp-includes/version.php").write_text("<?php\n$wp_version = '6.7.1';\n")
        (web / "wp-settings.php").write_text("<?php\n")
        (web / "wp-config.php").write_text(WP_CONFIG.format(i=i))
        content = web / "wp-content"
        for sub in ("uploads/2026/11", "plugins", "themes", "languages"):
            (content / sub).mkdir(parents=True, exist_ok=True)
        (root / f"var/www/clients/client{i}/web{i}/tmp").mkdir(exist_ok=True)
        if i % 3 == 0:
            (content / "plugins/webp-express").mkdir()
            (content / "plugins/webp-express/webp-express.php").write_text(WEBP)
            (content / "webp-express/config").mkdir(parents=True)
            (content / "webp-express/config/index.php").write_text("<?php\n")
            (content / "plugins/wp-super-cache").mkdir()
            (content / "plugins/wp-super-cache/wp-cache.php").write_text(SUPER_CACHE)
            (content / "wp-cache-config.php").write_text(CACHE_CONFIG)
            (content / "cache/supercache").mkdir(parents=True)
    return root


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    pm = plugins.load()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        root = build(Path(tmp), n)
        print(f"tree of {n} WordPress pools built in {time.perf_counter() - t:.1f} s")
        # CPU time of this process: 7 helpers share this machine's 2 cores, wall time wobbles
        t, c = time.perf_counter(), time.process_time()
        result = generate.plan(str(root), pm, check=False)
        text_s, text_w = time.process_time() - c, time.perf_counter() - t
        t, c = time.perf_counter(), time.process_time()
        invariants.check_plan(result)
        inv_s, inv_w = time.process_time() - c, time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # the whole process
    apps = sum(len(e.policy.apps) for e in result.entries if e.policy)
    print(f"pools ready: {len(result.ready)} of {n}; apps detected: {apps}; problems: {len(result.problems)}")
    for p in result.problems[:3]:
        print("  ", p[:300])
    print(f"text (read+sites+apps+policy+render): {text_s:.3f} s CPU ({text_w:.3f} s wall)")
    print(f"invariants (automata):                {inv_s:.3f} s CPU ({inv_w:.3f} s wall, "
          f"{inv_s / n * 1e3:.3f} ms/pool)")
    print(f"text + invariants: {text_s + inv_s:.3f} s -> {(text_s + inv_s) / 2.0:.2f}x of the 2 s goal; "
          f"peak RSS {peak / 2**20:.0f} MB -> {peak / 2**20 / 300:.2f}x of 300 MB")


if __name__ == "__main__":
    main()

"""The app plugins' EXPECTATIONS tables in a real AppArmor kernel (qemu, tests/vm).

The demo tree (WordPress + WebP Express + WP Super Cache in pool `blog`, Debian's phpMyAdmin
package in pool `pma`, Nextcloud in pool
`cloud`) gets its policy from the real CLI (`php-fpm-apparmor --root TREE generate`); then
one boot loads it, starts php-fpm8.2 and runs every table row as a probe in its pool.
open_basedir and doc_root are taken out of the pools first, so AppArmor alone decides.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from php_fpm_apparmor import testing
from php_fpm_apparmor_plugins import nextcloud, phpmyadmin, webp_express, wordpress, wp_super_cache

REPO = Path(__file__).resolve().parents[1]
BLOG, CLOUD, DATA = "/var/www/blog", "/var/www/cloud", "/srv/nextcloud-data"
PMA = "/usr/share/phpmyadmin"
BUNDLED = ("/wp-content/plugins/webp-express/vendor/rosell-dk/webp-convert/src/Convert/"
           "Converters/Binaries/cwebp-120-linux-x86-64")
TABLES = {
    "blog": (dict(root=BLOG, content=BLOG + "/wp-content", other=CLOUD, data=DATA),
             wordpress.EXPECTATIONS + webp_express.EXPECTATIONS + wp_super_cache.EXPECTATIONS),
    "cloud": (dict(root=CLOUD, data=DATA, other=BLOG, content=BLOG + "/wp-content"),
              nextcloud.EXPECTATIONS),
    "pma": (dict(root=PMA, other=BLOG), phpmyadmin.EXPECTATIONS),
}
PMA_POOL = """[pma]
user = pma
group = pma
listen = /run/php/pma.sock
listen.owner = www-data
listen.group = www-data
pm = ondemand
pm.max_children = 4
apparmor_hat = pma
chdir = /usr/share/phpmyadmin
php_admin_value[upload_tmp_dir] = /var/lib/phpmyadmin/tmp
"""


def add_phpmyadmin(tree: Path) -> None:
    """Debian's phpMyAdmin package files (without translations, JS and docs: the kernel
    only needs what the probes touch) and a pool serving it, as an admin writes it."""
    import apptrees as at

    src = at.phpmyadmin_source()
    if src is None:
        pytest.skip("phpmyadmin package not available")
    skip = shutil.ignore_patterns("locale", "js", "themes", "doc")
    for part in ("usr/share/phpmyadmin", "etc/phpmyadmin", "var/lib/phpmyadmin"):
        shutil.copytree(src / part, tree / part, symlinks=True, ignore=skip, dirs_exist_ok=True)
    (tree / "var/lib/phpmyadmin/blowfish_secret.inc.php").write_text("<?php $cfg['blowfish_secret'] = 'x';\n")
    (tree / "etc/phpmyadmin/conf.d/local.php").write_text("<?php\n")
    (tree / "etc/php/8.2/fpm/pool.d/pma.conf").write_text(PMA_POOL)
    with open(tree / "etc/passwd", "a") as f:
        f.write("pma:x:1010:1010:phpMyAdmin pool:/usr/share/phpmyadmin:/usr/sbin/nologin\n")
    with open(tree / "etc/group", "a") as f:
        f.write("pma:x:1010:\n")


def vm():
    try:
        import vm as harness
    except ImportError as exc:  # the harness is another part of the tree
        pytest.skip(f"tests/vm not importable: {exc}")
    reason = harness.available()
    if reason:
        pytest.skip(reason)
    return harness


def prepare_tree(tree: Path) -> None:
    """The demo tree, made fit for probing; then the policy from the real CLI."""
    shutil.copytree(REPO / "demo", tree, symlinks=True)
    for conf in tree.glob("etc/php/*/fpm/pool.d/*.conf"):
        lines = [l for l in conf.read_text().splitlines()
                 if "open_basedir" not in l and "[doc_root]" not in l]
        conf.write_text("\n".join(lines) + "\n")
    add_phpmyadmin(tree)
    cfg = tree / "etc/php-fpm-apparmor/php-fpm-apparmor.conf"
    cfg.write_text(cfg.read_text().replace("mode = complain", "mode = enforce"))
    # Files a deny row must find (so EACCES, not ENOENT, is what stops the probe).
    for name in TABLES:
        places, rows = TABLES[name]
        for row in rows:
            exp = row.resolve(**places)
            disk = tree / exp.target.lstrip("/")
            if exp.op in ("read", "write") or (exp.op == "exec" and len(exp.argv) > 2):
                disk.parent.mkdir(parents=True, exist_ok=True)
            if exp.op == "read" and not disk.exists() and exp.target.startswith(("/var/www", "/srv")):
                disk.write_text("<?php // secret\n")
            if exp.op == "write" and exp.expect == "allow" and disk.is_file():
                disk.unlink()  # created by the pool's user, as in real life (owner rules)
        for row in rows:  # binaries an attacker dropped: they exist and are executable
            for word in " ".join(row.resolve(**places).argv).split():
                if word.startswith(("/var/www", "/srv")) and "miner" in word or word.endswith("/cwebp"):
                    p = tree / word.lstrip("/")
                    p.parent.mkdir(parents=True, exist_ok=True)
                    p.write_text("#!/bin/sh\necho pwned\n")
                    p.chmod(0o755)
    proc = subprocess.run([sys.executable, "-m", "php_fpm_apparmor", "--root", str(tree), "generate"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The VM brings the real php-fpm8.2, cwebp and bash; the tree's stand-ins must not shadow them.
    for stub in (tree / "usr/sbin").glob("php-fpm*"):
        stub.unlink()
    shutil.copy2("/usr/bin/cwebp", tree / (BLOG + BUNDLED).lstrip("/"))
    (tree / "usr/bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2("/usr/bin/bash", tree / "usr/bin/bash")


@pytest.mark.vm
def test_expectations_in_a_real_kernel(tmp_path):
    harness = vm()
    if not shutil.which("cwebp"):
        pytest.skip("cwebp not installed (apt install webp)")
    tree = tmp_path / "tree"
    prepare_tree(tree)
    failed, summary = testing.run_in_kernel(harness, tree, TABLES, artefacts=REPO / "artifacts/vm")
    assert summary["booted"], summary
    print(f"{len(summary['phases'][0]['results'])} probes, boot {summary.get('boot_seconds')} s, "
          f"total {summary['seconds']:.1f} s")
    assert not failed, "\n".join(failed)
    # every refusal was AppArmor's, in the pool's own profile (or one of its children)
    denied = {(d.get("profile"), d.get("operation")) for d in summary["denials"]
              if d.get("apparmor") == "DENIED"}
    assert any(p and p.startswith("php-fpm//blog") for p, _ in denied)
    assert any(p and p.startswith("php-fpm//cloud") for p, _ in denied)
    assert any(p and p.startswith("php-fpm//pma") for p, _ in denied)

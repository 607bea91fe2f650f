"""What goes onto a scenario's payload disk: our .deb, a plugin package, the guest script."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from .image import Release

GUEST = Path(__file__).resolve().parent / "guest"
PLUGIN_PACKAGE = "php-fpm-apparmor-plugin-pfademo"


def plugin_deb(out: Path) -> Path:
    """A minimal third-party plugin package, laid out as docs/debian.md asks: the module and
    its entry point (dist-info) in dist-packages, the trigger marker, Depends on us."""
    tree = out / "plugin-tree"
    shutil.rmtree(tree, ignore_errors=True)
    site = tree / "usr/lib/python3/dist-packages"
    info = site / "pfademo_apparmor-1.0.dist-info"
    info.mkdir(parents=True)
    shutil.copy(GUEST / "pfademo_apparmor.py", site / "pfademo_apparmor.py")
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pfademo-apparmor\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[php_fpm_apparmor]\npfademo = pfademo_apparmor\n")
    marker = tree / "usr/share/php-fpm-apparmor/plugins" / PLUGIN_PACKAGE
    marker.parent.mkdir(parents=True)
    marker.write_text("# pfademo: a test app plugin\n")
    (tree / "DEBIAN").mkdir()
    (tree / "DEBIAN/control").write_text(
        f"Package: {PLUGIN_PACKAGE}\nVersion: 1.0\nArchitecture: all\n"
        "Depends: php-fpm-apparmor\nEnhances: php-fpm-apparmor\n"
        "Maintainer: tests <tests@php-fpm-apparmor.invalid>\n"
        "Description: test app plugin for php-fpm-apparmor\n")
    deb = out / f"{PLUGIN_PACKAGE}_1.0_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(tree), str(deb)], check=True,
                   capture_output=True)
    return deb


def bumped(deb: Path, out: Path, suffix: str = "+sysup1") -> Path:
    """The same package with a higher version: what an upgrade of it installs."""
    tree = out / "bumped-tree"
    shutil.rmtree(tree, ignore_errors=True)
    subprocess.run(["dpkg-deb", "-R", str(deb), str(tree)], check=True, capture_output=True)
    control = tree / "DEBIAN/control"
    lines = control.read_text().splitlines(True)
    control.write_text("".join(ln.rstrip("\n") + suffix + "\n" if ln.startswith("Version: ") else ln
                               for ln in lines))
    name, version, rest = deb.name.split("_", 2)
    new = out / f"{name}_{version}{suffix}_{rest}"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(tree), str(new)], check=True,
                   capture_output=True)
    shutil.rmtree(tree)
    return new


def admin(dest: Path, release: Release, deb: Path, watchdog: int = 1500) -> Path:
    """Payload of the admin scenario in `dest` (becomes the disk's root)."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "results").mkdir(exist_ok=True)
    shutil.copy(deb, dest / deb.name)
    plugin = plugin_deb(dest.parent)
    shutil.copy(plugin, dest / plugin.name)
    upgrade = bumped(deb, dest)
    shutil.copy(GUEST / "probe.php", dest / "probe.php")
    shutil.copy(GUEST / "admin.py", dest / "run")
    (dest / "run").chmod(0o755)
    (dest / "config.json").write_text(json.dumps({
        "php": release.php, "kernel": release.kernel, "deb": deb.name,
        "plugin_deb": plugin.name, "upgrade_deb": upgrade.name, "plugin_package": PLUGIN_PACKAGE, "watchdog": watchdog}))
    return dest


def wordpress(dest: Path, release: Release, deb: Path, rows: list[dict],
              watchdog: int = 1500) -> Path:
    """Payload of the WordPress scenario: guest/wordpress.py runs, admin.py is its helpers."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "results").mkdir(exist_ok=True)
    shutil.copy(deb, dest / deb.name)
    shutil.copy(GUEST / "probe.php", dest / "probe.php")
    shutil.copy(GUEST / "admin.py", dest / "admin.py")
    shutil.copy(GUEST / "wordpress.py", dest / "run")
    shutil.copytree(GUEST / "wp", dest / "wp", dirs_exist_ok=True)  # theme, cache stand-in, sendmail
    (dest / "run").chmod(0o755)
    (dest / "config.json").write_text(json.dumps({
        "php": release.php, "kernel": release.kernel, "deb": deb.name, "rows": rows,
        "watchdog": watchdog}))
    return dest

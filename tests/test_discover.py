"""Discovery of PHP-FPM installations under a system root, and dpkg's view of them."""

from __future__ import annotations

import os
import shutil

import pytest

import phpver

from php_fpm_apparmor.discover import Installation, find_installations, installed_fpm_packages

STATUS = """\
Package: php8.2-fpm
Status: install ok installed
Priority: optional
Section: httpd
Maintainer: X <x@example.org>
Architecture: amd64
Version: 8.2.29-1
Description: fpm

Package: php8.1-fpm
Status: deinstall ok config-files
Priority: optional
Section: httpd
Maintainer: X <x@example.org>
Architecture: amd64
Version: 8.1.2-1
Description: fpm (removed, conffiles left)

Package: php8.10-fpm
Status: install ok installed
Priority: optional
Section: httpd
Maintainer: X <x@example.org>
Architecture: amd64
Version: 8.10.0-1
Description: fpm
"""
needs_dpkg = pytest.mark.skipif(not shutil.which("dpkg-query"), reason="no dpkg-query")


def touch(root, path, text=""):
    p = root / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def test_debian_versions_sorted_numerically(tmp_path):
    for v in ("8.10", "7.4", "8.2"):
        touch(tmp_path, f"/etc/php/{v}/fpm/php-fpm.conf")
    touch(tmp_path, "/etc/php/8.3/cli/php.ini")  # cli only: not an FPM installation
    (tmp_path / "etc/php/mods-available").mkdir()  # not a version directory
    found = find_installations(str(tmp_path))
    assert [i.version for i in found] == ["7.4", "8.2", "8.10"]
    assert found[1] == Installation(
        version="8.2", binary="/usr/sbin/php-fpm8.2", config="/etc/php/8.2/fpm/php-fpm.conf",
        php_ini="/etc/php/8.2/fpm/php.ini", service="php8.2-fpm.service", prefix="/usr", package=None)
    assert found[1].ini_scan_dir == "/etc/php/8.2/fpm/conf.d"


def test_rhel_layout(tmp_path):
    touch(tmp_path, "/etc/php-fpm.conf", "include=/etc/php-fpm.d/*.conf\n")
    (inst,) = find_installations(str(tmp_path))
    assert (inst.version, inst.binary, inst.config, inst.php_ini, inst.service) == (
        "default", "/usr/sbin/php-fpm", "/etc/php-fpm.conf", "/etc/php.ini", "php-fpm.service")
    assert inst.ini_scan_dir == "/etc/php.d"


def test_empty_root(tmp_path):
    assert find_installations(str(tmp_path)) == []
    assert installed_fpm_packages(str(tmp_path)) == {}


@needs_dpkg
def test_packages_from_a_foreign_dpkg_database(tmp_path):
    touch(tmp_path, "/var/lib/dpkg/status", STATUS)
    for v in ("8.1", "8.2"):
        touch(tmp_path, f"/etc/php/{v}/fpm/php-fpm.conf")
    assert installed_fpm_packages(str(tmp_path)) == {"php8.2-fpm": "8.2.29-1", "php8.10-fpm": "8.10.0-1"}
    by_version = {i.version: i.package for i in find_installations(str(tmp_path))}
    # 8.1 was removed but left its conffiles: still reported, without a package.
    assert by_version == {"8.1": None, "8.2": "php8.2-fpm"}


@needs_dpkg
def test_garbage_status_db_never_raises(tmp_path):
    touch(tmp_path, "/var/lib/dpkg/status", "\x00\x01 not a status file\n\n::::\n")
    assert installed_fpm_packages(str(tmp_path)) == {}


def test_no_dpkg_query_on_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert installed_fpm_packages("/") == {}


@pytest.mark.skipif(not os.path.exists(phpver.FPM), reason=f"{phpver.PACKAGE} not installed")
@needs_dpkg
def test_live_system_reports_installed_php_fpm():
    assert phpver.PACKAGE in installed_fpm_packages("/")
    assert any(i.version == phpver.VERSION and i.package == phpver.PACKAGE for i in find_installations("/"))

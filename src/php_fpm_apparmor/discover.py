"""Step 0: which PHP-FPM installations exist under a system root.

Layouts: Debian/Ubuntu/sury (`/etc/php/X.Y/fpm/php-fpm.conf`, `/usr/sbin/php-fpmX.Y`) and
RHEL (`/etc/php-fpm.conf`, `/usr/sbin/php-fpm`). A config without its binary is still
reported (dpkg leaves conffiles of removed packages behind): `package` says whether dpkg
knows the version as installed, so callers can tell the two apart.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass

DEBIAN_ETC = "/etc/php"
RHEL_CONF = "/etc/php-fpm.conf"
_VERSION = re.compile(r"^[0-9]+\.[0-9]+$")


@dataclass(frozen=True)
class Installation:
    version: str  # "8.2"; "default" for the RHEL layout
    binary: str  # system path of the binary
    config: str  # system path of the main conf
    php_ini: str  # system path of the fpm php.ini
    service: str  # systemd unit
    prefix: str  # include= and relative paths are relative to it ("/usr")
    package: str | None = None  # "php8.2-fpm" when dpkg says it is installed

    @property
    def ini_scan_dir(self) -> str:
        """Where this php-fpm reads extra *.ini files (PHP_CONFIG_FILE_SCAN_DIR)."""
        if self.php_ini == "/etc/php.ini":
            return "/etc/php.d"
        return os.path.join(os.path.dirname(self.php_ini), "conf.d")


def disk(sysroot: str, path: str) -> str:
    """The on-disk location of a system path below `sysroot`."""
    if sysroot in ("", "/"):
        return path
    return os.path.join(sysroot, path.lstrip("/"))


def _version_key(version: str):
    if _VERSION.match(version):
        return (0, tuple(int(p) for p in version.split(".")), version)
    return (1, (), version)


def find_installations(sysroot: str = "/") -> list[Installation]:
    """Every PHP-FPM main config under `sysroot`, sorted by version."""
    packages = installed_fpm_packages(sysroot)
    found = []
    try:
        versions = os.listdir(disk(sysroot, DEBIAN_ETC))
    except OSError:
        versions = []
    for version in versions:
        # Only X.Y directories: anything else under /etc/php is not a PHP version.
        if not _VERSION.match(version):
            continue
        conf = f"{DEBIAN_ETC}/{version}/fpm/php-fpm.conf"
        if not os.path.isfile(disk(sysroot, conf)):
            continue
        package = f"php{version}-fpm"
        found.append(
            Installation(
                version=version,
                binary=f"/usr/sbin/php-fpm{version}",
                config=conf,
                php_ini=f"{DEBIAN_ETC}/{version}/fpm/php.ini",
                service=f"php{version}-fpm.service",
                prefix="/usr",
                package=package if package in packages else None,
            )
        )
    if os.path.isfile(disk(sysroot, RHEL_CONF)):
        package = "php-fpm" if "php-fpm" in packages else None
        found.append(
            Installation(
                version="default",
                binary="/usr/sbin/php-fpm",
                config=RHEL_CONF,
                php_ini="/etc/php.ini",
                service="php-fpm.service",
                prefix="/usr",
                package=package,
            )
        )
    return sorted(found, key=lambda i: _version_key(i.version))


def installed_fpm_packages(sysroot: str = "/") -> dict[str, str]:
    """{package: version} of the installed php*-fpm packages per dpkg; {} without dpkg."""
    dpkg_query = shutil.which("dpkg-query")
    if not dpkg_query:
        return {}
    cmd = [dpkg_query]
    if sysroot not in ("", "/"):
        admindir = disk(sysroot, "/var/lib/dpkg")
        if not os.path.isdir(admindir):
            return {}  # never fall back to the host's database for a foreign root
        cmd.append(f"--admindir={admindir}")
    cmd += [
        "-W",
        "-f=Package: ${Package}\\nVersion: ${Version}\\nStatus: ${db:Status-Abbrev}\\n\\n",
        "php*-fpm",
    ]
    try:
        out = subprocess.run(
            cmd, capture_output=True, text=True, timeout=30, env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"}
        ).stdout
    except (OSError, subprocess.SubprocessError, ValueError):
        return {}
    if not out.strip():
        return {}
    try:  # imported only when there is something to parse: 15 ms of every start otherwise
        from debian.deb822 import Deb822
    except ImportError:  # python3-debian missing: behave as if there were no dpkg
        return {}
    packages = {}
    try:
        for para in Deb822.iter_paragraphs(out.splitlines()):
            name, version = para.get("Package"), para.get("Version")
            # "ii" = installed; "rc" = removed with conffiles left, not installed.
            if name and version and para.get("Status", "").startswith("ii"):
                packages[name] = version
    except Exception:  # a malformed status db must not break discovery
        return {}
    return packages

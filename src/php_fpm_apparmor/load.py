"""Step 8: load into the kernel. Only on the live system, and only when AppArmor is on.

Without AppArmor in the kernel every load step is skipped, never failed: the files are
still installed, ready for the next boot with AppArmor.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from .policy import PARENT
from .validate import parser, staged
KERNEL_PROFILES = "/sys/kernel/security/apparmor/profiles"


def enabled(sysroot: str = "/") -> bool:
    if sysroot not in ("/", ""):
        return False
    exe = shutil.which("aa-enabled")
    if exe:
        return subprocess.run([exe, "--quiet"], capture_output=True).returncode == 0
    try:
        return Path("/sys/module/apparmor/parameters/enabled").read_text().strip() == "Y"
    except OSError:
        return False


def loaded() -> dict[str, str]:
    """{profile name: mode} for everything the kernel has loaded ({} when unreadable)."""
    try:
        text = Path(KERNEL_PROFILES).read_text()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        name, _, mode = line.rpartition(" (")
        out[name] = mode.rstrip(")")
    return out


def _run(args: list[str]) -> str | None:
    exe = parser()
    if exe is None:
        return "apparmor_parser not found"
    proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=900)
    return None if proc.returncode == 0 else (proc.stderr or proc.stdout).strip()


def reload(profile_file: str, use_cache: bool = False) -> str | None:
    """Replace the php-fpm profile (all hats with it); None on success, else the message.

    The cache is always written (-W: the next boot loads it instead of compiling), and read
    only when asked: when no file changed since it was written (the parser checks the
    mtimes of the profile and every file it includes, and unchanged files keep theirs)."""
    return _run(["-r", "-W", *([] if use_cache else ["-T"]), profile_file])


def replace_parent(main_text: str, files: dict[str, str], includes: list[str]) -> str | None:
    """Replace the php-fpm profile with `main_text` and php-fpm.d/ as `files` (staged, not
    the installed directory). Hats the staged files do not define stay loaded as they are
    (a replaced profile keeps the children it does not redefine). No cache is read or
    written: the text may be partial, the cache must match the files on disk."""
    with staged(main_text, files) as (stage, main):
        return _run(["-r", "-T", "-I", stage, *[a for d in includes for a in ("-I", d)], main])


# Set by a partial load, cleared by the refresh that compiles after it: one refresh unit
# at a time, compiling again while loads keep coming (a script switching a hundred pools
# one by one must not start a hundred whole-profile compiles).
CACHE_STALE = "/var/lib/php-fpm-apparmor/cache-stale"
CACHE_UNIT = "php-fpm-apparmor-cache"
_REFRESH = 'while [ -e "$1" ]; do rm -f "$1"; "$2" -Q -T -W "$3" || exit 1; done'


def refresh_cache(profile_file: str) -> str:
    """Start bringing the boot-time cache of `profile_file` up to date, in the background;
    says what happened. After a partial load nothing wrote it, and a boot would compile the
    whole profile (about a minute per thousand pools) before php-fpm starts. It runs as a
    transient systemd unit: it outlives this run (a oneshot unit's leftover processes are
    killed when it ends) and delays no reload. The parser dates the cache by the newest
    file it read, so a change made meanwhile leaves the cache stale, never wrong."""
    exe, run = parser(), shutil.which("systemd-run")
    if exe is None or run is None or not Path("/run/systemd/system").is_dir():
        return "not refreshed (no systemd): the next boot compiles the profile"
    try:
        Path(CACHE_STALE).parent.mkdir(parents=True, exist_ok=True)
        Path(CACHE_STALE).touch()
        proc = subprocess.run([run, "--no-block", "--quiet", "--collect", f"--unit={CACHE_UNIT}",
                               "--description=Refresh the AppArmor cache of the php-fpm profile",
                               "-p", "Nice=19", "-p", "IOSchedulingClass=idle",
                               "/bin/sh", "-c", _REFRESH, CACHE_UNIT, CACHE_STALE, exe, profile_file],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"not refreshed ({exc}): the next boot compiles the profile"
    if proc.returncode:
        if subprocess.run(["systemctl", "is-active", "--quiet", f"{CACHE_UNIT}.service"]).returncode == 0:
            return f"{CACHE_UNIT}.service is refreshing it and compiles again for this change"
        return f"not refreshed ({(proc.stderr or proc.stdout).strip()}): the next boot compiles the profile"
    return f"refreshing in {CACHE_UNIT}.service"


def replace_text(text: str) -> str | None:
    """Load top-level `profile php-fpm//x` blocks next to the loaded parent: only those
    profiles are replaced, the parent and its other hats stay as they are."""
    with tempfile.NamedTemporaryFile("w", prefix="php-fpm-apparmor-", suffix=".hats", delete=False) as f:
        f.write(text)
    try:
        return _run(["-r", "-T", f.name])
    finally:
        Path(f.name).unlink(missing_ok=True)


def in_use() -> set[str]:
    """Profile names some running process is confined by (from /proc/*/attr/current)."""
    names = set()
    for proc in Path("/proc").glob("[0-9]*"):
        for attr in ("attr/apparmor/current", "attr/current"):
            try:
                label = (proc / attr).read_text().strip().rstrip("\x00")
            except OSError:
                continue
            names.add(label.rsplit(" (", 1)[0])
            break
    return names


def removal_text(names: list[str]) -> str:
    """A file naming hats/children for `apparmor_parser -R` (only the names matter)."""
    return "".join(f"profile {PARENT}//{n} {{\n}}\n" for n in names)


def unload(names: list[str]) -> str | None:
    """Remove hats/child profiles the parent no longer defines (replacing it keeps them)."""
    present = loaded()
    busy = in_use()
    # A worker whose hat is removed runs unconfined, and its master can no longer signal
    # it (seen in a real kernel): such hats stay until php-fpm has dropped the pool.
    names = [n for n in names if f"{PARENT}//{n}" in present and f"{PARENT}//{n}" not in busy]
    if not names:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".remove", delete=False) as f:
        f.write(removal_text(names))
    try:
        return _run(["-R", f.name])
    finally:
        Path(f.name).unlink(missing_ok=True)

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
from .validate import parser
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
    with tempfile.TemporaryDirectory(prefix="php-fpm-apparmor-parent-") as stage:
        Path(stage, "php-fpm.d").mkdir()
        for name, text in files.items():
            Path(stage, "php-fpm.d", name).write_text(text)
        Path(stage, "php-fpm-main").write_text(main_text)
        return _run(["-r", "-T", "-I", stage, *[a for d in includes for a in ("-I", d)],
                     str(Path(stage, "php-fpm-main"))])


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

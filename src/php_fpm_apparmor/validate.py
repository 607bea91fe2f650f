"""Step 6: compile candidates with the real apparmor_parser before anything live changes.

`-Q -K` compiles without a kernel or cache, `-M` pins the feature set Debian ships, so the
result does not depend on the running kernel (or on there being AppArmor in it at all).
The features file is the one shipped beside the parser being run (the apparmor package
of Debian 12 and 13 each ship their own): features_for() finds it from the parser's path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

from . import forked

FEATURES = "/usr/share/apparmor-features/features"
APPARMOR_DIR = "/etc/apparmor.d"
WRAPPER = """abi <abi/3.0>,
include <tunables/global>
profile php-fpm /usr/sbin/php-fpm* flags=(attach_disconnected) {{
  include "{path}"
}}
"""


def parser() -> str | None:
    return shutil.which("apparmor_parser") or next(
        (p for p in ("/usr/sbin/apparmor_parser", "/sbin/apparmor_parser") if os.access(p, os.X_OK)), None)


def search_dirs(sysroot: str) -> list[str]:
    """Include dirs: the target system's apparmor.d, falling back to this machine's."""
    own = Path(sysroot, APPARMOR_DIR.lstrip("/"))
    dirs = [str(own)] if own.is_dir() else []
    if not (own / "abstractions" / "base").exists() and str(own) != APPARMOR_DIR:
        dirs.append(APPARMOR_DIR)
    return dirs


def features_for(exe: str) -> str | None:
    """The features file of the package that ships `exe`: <prefix>/share/apparmor-features
    for <prefix>/sbin/apparmor_parser (/sbin is /usr/sbin on a merged /usr). A parser under
    /usr/local has no features there: then none, never Debian's file for another parser."""
    prefix = Path(os.path.realpath(exe)).parents[1]
    if prefix == Path("/"):  # /sbin/apparmor_parser on a split /usr
        prefix = Path("/usr")
    candidate = prefix / "share/apparmor-features/features"
    return str(candidate) if candidate.is_file() else None


def compile_file(path: str, includes: list[str], features: str | None = None) -> str | None:
    """None if `path` compiles, else the parser's message."""
    exe = parser()
    if exe is None:
        return "apparmor_parser not found (install the apparmor package)"
    cmd = [exe, "-Q", "-K", "--quiet"]
    features = features or features_for(exe)
    if features and os.path.exists(features):
        cmd += ["-M", features]
    for d in includes:
        cmd += ["-I", d]
    proc = subprocess.run(cmd + [path], capture_output=True, text=True, timeout=600)
    if proc.returncode == 0:
        return None
    return (proc.stderr or proc.stdout).strip() or f"apparmor_parser exited {proc.returncode}"


@contextmanager
def staged(main_text: str, files: dict[str, str]):
    """(stage dir, main file) of a temporary php-fpm profile with php-fpm.d/ as `files`:
    with the stage first on the include path, `<php-fpm.d>` is these files, not the
    installed ones (a compile before install, a load of part of the profile)."""
    with tempfile.TemporaryDirectory(prefix="php-fpm-apparmor-stage-") as stage:
        Path(stage, "php-fpm.d").mkdir()
        for name, text in files.items():
            Path(stage, "php-fpm.d", name).write_text(text)
        main = Path(stage, "php-fpm-main")
        main.write_text(main_text)
        yield stage, str(main)


def compile_pools(texts: dict[str, str], includes: list[str], done=None) -> dict[str, str | None]:
    """Compile each pool file alone inside a php-fpm parent: {hat: error or None}.
    done(hat) is called as each finishes (progress)."""
    with tempfile.TemporaryDirectory(prefix="php-fpm-apparmor-") as tmp:
        jobs = {}
        for hat, text in texts.items():
            body = Path(tmp, hat)
            body.write_text(text)
            wrapper = Path(tmp, f"{hat}.wrapper")
            wrapper.write_text(WRAPPER.format(path=body))
            jobs[hat] = str(wrapper)
        names = list(jobs)
        errors = compile_files(list(jobs.values()), includes, done and (lambda i: done(names[i])))
    return dict(zip(names, errors))


def compile_files(paths: list[str], includes: list[str], done=None) -> list[str | None]:
    """compile_file() of each path, one parser run per core side by side (the parser
    compiles one file's profiles one after another); done(index) as each finishes."""
    from concurrent.futures import ThreadPoolExecutor  # only when compiling: not for `status`

    def one(i):
        error = compile_file(paths[i], includes)
        if done:
            done(i)
        return error
    with ThreadPoolExecutor(max_workers=forked.cpus()) as pool:
        return list(pool.map(one, range(len(paths))))

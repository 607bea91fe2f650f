"""Step 7: put validated files in place atomically, and only the ones that changed.

A temp file is written as a dotfile (AppArmor's directory include skips dotfiles),
fsync'd, then renamed over the target: a crash leaves either the old or the new file,
never half of one. Unchanged files keep their mtime, so the parser's cache stays valid.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path

from .render import HEADER, LEFT_OUT

POOL_DIR = "/etc/apparmor.d/php-fpm.d"
LOCAL_DIR = "/etc/apparmor.d/local/php-fpm.d"
MAIN_PROFILE = "/etc/apparmor.d/php-fpm-apparmor"  # ours, only when no other php-fpm profile
STOCK_PROFILE = "/etc/apparmor.d/php-fpm"  # Debian's apparmor-profiles
LOCK = "/run/lock/php-fpm-apparmor.lock"
STATE = "/var/lib/php-fpm-apparmor/local.sha256"  # the admin's overrides last loaded (sha256sum format)


def at(sysroot: str, path: str) -> Path:
    return Path(sysroot, path.lstrip("/"))


@contextmanager
def lock(sysroot: str, timeout: float = 120.0):
    """One generator run at a time (dpkg trigger, path unit and admin may race)."""
    path = at(sysroot, LOCK)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                    raise TimeoutError(f"another php-fpm-apparmor run holds {path}") from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)


def is_ours(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.readline().startswith(HEADER)
    except OSError:
        return False


def ours(sysroot: str) -> dict[str, Path]:
    """{hat: file} for the files in php-fpm.d/ that the generator wrote (by their header)."""
    d = at(sysroot, POOL_DIR)
    if not d.is_dir():
        return {}
    return {p.name: p for p in sorted(d.iterdir())
            if not p.name.startswith(".") and p.is_file() and is_ours(p)}


def write_atomic(path: Path, text: str, mode: int = 0o644, keep_meta: bool = False) -> bool:
    """Write `text` to `path` unless it already holds it; True if the file changed.

    keep_meta: an admin's file (a pool .conf): write through a symlink to the real file and
    keep its mode and owner (pool files often hold env[] secrets)."""
    owner = None
    if keep_meta and path.exists():
        path = Path(os.path.realpath(path))
        st = path.stat()
        mode, owner = st.st_mode & 0o7777, (st.st_uid, st.st_gid)
    data = text.encode("utf-8")
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            os.fchmod(fd, mode)  # not narrowed by the umask: the mode asked for, or the old one
            if owner:
                os.fchown(fd, *owner)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return True


def clean_temp(sysroot: str) -> None:
    """Remove temp files a killed run may have left (they are dotfiles: never loaded)."""
    d = at(sysroot, POOL_DIR)
    if d.is_dir():
        for p in d.glob(".*.tmp-*"):
            p.unlink(missing_ok=True)


def local_digests(sysroot: str) -> dict[str, str]:
    """{"php-fpm" or "php-fpm.d/<hat>": sha256} of the admin's override files: editing one
    must recompile and reload what includes it (the master, or that one hat)."""
    import hashlib  # only here: _hashlib costs `status` 2 ms

    base = at(sysroot, "/etc/apparmor.d/local")
    out = {}
    for name, p in [("php-fpm", base / "php-fpm"),
                    *((f"php-fpm.d/{p.name}", p) for p in sorted(at(sysroot, LOCAL_DIR).glob("*")))]:
        if p.is_file():
            out[name] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def read_state(sysroot: str) -> dict[str, str] | None:
    """The digests last loaded; None if unknown (none yet, or the one-digest format of
    earlier versions): then every override counts as changed."""
    try:
        lines = at(sysroot, STATE).read_text().splitlines()
    except OSError:
        return None
    out = {}
    for line in lines:
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or not name:
            return None
        out[name] = digest
    return out


def write_state(sysroot: str, digests: dict[str, str]) -> None:
    write_atomic(at(sysroot, STATE), "".join(f"{d}  {n}\n" for n, d in sorted(digests.items())))


_BODY = re.compile(rb"^[^#]", re.M)  # the first line that is not a comment ends the header
_EXCEPTION = re.compile(r"exception \((.*?)\): writes (.*?): (.*)$")


def header(file) -> dict | None:
    """What an installed file's header says: mode, apps, exceptions and, when generate left
    the pool's overrides out, that line ("left_out"); None if there is no file."""
    if file is None:
        return None
    try:  # the leading comment lines alone: decoding whole files was a tenth of `status`
        with open(file, "rb") as f:
            data = b""
            while True:
                chunk = f.read(8192)
                data += chunk
                end = _BODY.search(data)
                if end or not chunk:
                    break
    except OSError:
        return None
    text = data[:end.start() if end else len(data)].decode("utf-8", errors="replace")
    head = [line[2:] for line in text.split("\n") if line.startswith("#")]
    # render writes "exception (SOURCE): writes PATH: WHY"; shown as "PATH (SOURCE: WHY)"
    exceptions = [_EXCEPTION.match(h) for h in head]
    info = {"exceptions": [f"{m.group(2)} ({m.group(1)}: {m.group(3)})" for m in exceptions if m],
            "apps": [" ".join(h.split(" at ", 1)[0].split()[1:]) for h in head if h.startswith("app ")]}
    for h in head:
        if h.startswith("mode "):
            info["mode"] = h.split()[1].rstrip(";")
        elif h.startswith(LEFT_OUT):
            info["left_out"] = f"{file}: {h}"
    return info

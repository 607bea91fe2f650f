"""The web servers' configs as `generate` last read them, used while none of their files changed.

A panel's thousand nginx vhosts cost more to read than the thousand pools behind them
(about 0.7 s on a slow machine, against 0.6 s for `php-fpm -t`), yet they rarely change.
So `generate` keeps what it read (webserver.read) with the signature of every file and
directory the reading looked at: each file read, each directory an include globbed or
listed, each path tested for existence (webserver.Files notes them, taken before it looks).
A later run (`status`, `check`, the next `generate`) uses it only when:
- every one of those signatures (device, inode, size, mtime, ctime, mode) is unchanged, and
  for one that had changed less than a second before it was read (a second write in the
  same timestamp tick would leave its signature as it was: a panel's, or the path unit's
  `generate` right after an edit), the hash of the bytes or names read is unchanged too
  (a run that finds it so more than a second after its timestamps keeps the signature
  alone: a later write moves them);
- the readers' code is the code that wrote it, and the system tree is the same;
- the file is this user's and nobody else may write it or its directory: the vhosts' roots
  are the admin's word, so a file another user could write must not stand in for them.
Else the configs are read again. PHP_FPM_APPARMOR_CHECK_CACHE=1 (set by the test suite)
reads afresh each time too and fails if the two differ.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import stat
import sys
import time
from pathlib import Path

from .pools import read_regular
from .webserver import MAX_FILE, RACY_NS, UNKNOWN, Files, Vhost, WebConfig, digest, listing, signature

CACHE = "/var/cache/php-fpm-apparmor/webserver.json"
FORMAT = 1
CHECK = "PHP_FPM_APPARMOR_CHECK_CACHE"
_READERS = ("webserver.py", "nginx.py", "apache.py", "sites.py", "pools.py")


@functools.lru_cache(maxsize=None)  # kept() and keep() in one generate: the sources read once
def _code() -> str | None:
    """The readers' source (Files.disk resolves links with sites.canonical, reads with
    pools.open_regular) and Python's version (its re and os.path are readers too): another
    version's reading is never taken for this one's."""
    import hashlib  # only with a kept reading: _hashlib costs `status` 2 ms (install.py)

    h = hashlib.sha256(sys.version.encode())
    here = Path(__file__).parent
    try:
        for name in _READERS:
            h.update((here / name).read_bytes())
    except OSError:
        return None
    return h.hexdigest()


def as_data(web: WebConfig) -> dict:
    return {"servers": web.servers, "problems": web.problems,
            "vhosts": [dataclasses.asdict(v) for v in web.vhosts]}


def keep(sysroot: str, web: WebConfig) -> bool:
    """Write what `web` holds for the next run; False when it cannot be kept."""
    from . import install

    if not web.seen or UNKNOWN in web.seen:
        return False
    code = _code()
    if code is None:
        return False
    data = {"format": FORMAT, "code": code, "sysroot": sysroot, "seen": web.seen, **as_data(web)}
    path = install.at(sysroot, CACHE)
    try:
        # Whatever the umask (an admin's 002): a directory others may write is never read.
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        up = os.stat(path.parent)
        if up.st_uid == os.geteuid() and up.st_mode & 0o022:
            os.chmod(path.parent, stat.S_IMODE(up.st_mode) & ~0o022)
        install.write_atomic(path, json.dumps(data), mode=0o600)
    except OSError:  # a read-only /var: the configs are read each time, as before
        return False
    return True


def forget(sysroot: str) -> None:
    from . import install

    try:
        install.at(sysroot, CACHE).unlink()
    except OSError:
        pass


def kept(sysroot: str) -> WebConfig | None:
    """The kept reading, if it still holds; None means: read the configs."""
    from . import install

    path = install.at(sysroot, CACHE)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as f:
            st, up = os.fstat(f.fileno()), os.stat(path.parent)
            if not stat.S_ISREG(st.st_mode) or not _own(st) or not _own(up):
                return None
            data = json.loads(f.read())
        if data.get("format") != FORMAT or data.get("sysroot") != sysroot or data.get("code") != _code():
            return None
        # Below --root, links resolve inside the tree (Files.disk); on / the kernel's own
        # resolution in stat() is the same, without a readlink per path in Python.
        disk = (lambda p: p) if sysroot in ("/", "") else Files(sysroot, []).disk
        # A hash found to hold after its file's timestamps are a second old is needed no
        # more: a write since that look moves them. The next keep() writes the signature alone.
        settled = time.time_ns() - RACY_NS
        seen = {}
        for p, sig in data["seen"].items():
            if not isinstance(p, str) or p == UNKNOWN or not _holds(disk(p), sig):
                return None
            seen[p] = sig[:6] if sig is not None and len(sig) == 7 and max(sig[3], sig[4]) < settled else sig
        web = WebConfig(servers=_strings(data["servers"]), problems=_strings(data["problems"]),
                        vhosts=[_vhost(v) for v in data["vhosts"]])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    web.seen = seen
    return web


def _holds(disk: str, sig) -> bool:
    """Is the file or directory at `disk` as it was read? Its signature, and for one that
    had just changed then, the hash of its bytes or names."""
    now = signature(disk)
    if now is None or sig is None or len(sig) == 6:
        return now == sig
    if now != sig[:6]:
        return False
    if stat.S_ISDIR(now[5]):
        return listing(os.listdir(disk)) == sig[6]
    return digest(read_regular(disk, MAX_FILE + 1)[0]) == sig[6]  # NotRegular is an OSError


def _own(st) -> bool:
    return st.st_uid in (0, os.geteuid()) and not st.st_mode & 0o022


def _strings(value) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise ValueError("not a list of strings")
    return list(value)


def _vhost(v: dict) -> Vhost:
    roots = [(r, w) for r, w in v["roots"]]
    if not all(isinstance(x, str) for pair in roots for x in pair) or not isinstance(v["php"], bool) \
            or not all(isinstance(v[k], str) for k in ("server", "where", "address")):
        raise ValueError("not a vhost")
    return Vhost(server=v["server"], names=_strings(v["names"]), where=v["where"], address=v["address"],
                 roots=roots, problems=_strings(v["problems"]), php=v["php"])

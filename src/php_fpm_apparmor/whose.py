"""Whose word a path is: what a site's own files may name outside the site (api.named_path).

A site's files (wp-config.php, config.php) are its customer's, who may be the attacker; a
regenerate runs as root without them (a package trigger, an admin's pool edit). A place
they name outside the site is opened only on the word of whoever owns it: see named_path
and docs/plugin-guide.md, "Whose word counts".
"""

from __future__ import annotations

import functools
import os
import posixpath
import stat
from pathlib import Path

from .apphelpers import (SHARED_TEMP, PhpFacts, _unsafe, canonical_or_none, is_within, site_ini, temp_dir,
                         unsafe_path)


# Where services keep their state (nginx's request bodies in /var/lib/nginx): a place there
# is only ever the admin's to name, whoever owns it (www-data on a host of www-data sites).
SERVICE_STATE = ("/var/lib", "/var/cache", "/var/spool", "/var/backups", "/var/mail", "/run", "/var/run")


def named_path(site, path: str, told_by=None, write: bool = False) -> tuple[str | None, str | None]:
    """(canonical path, None) for a path a site's file names (or a default place reached
    through the site's symlinks) that this pool may have; (canonical path or None, why) when
    it may not.

    Whose word it is decides. The admin's (a file only root could have written, reached
    through root's symlinks; the pool's `write =`, its `read =` for a place only read, its
    own temp dirs) may name any place unsafe_path() accepts. A user's only a place inside
    the pool's roots, or one that same user owns: a customer's wp-config.php naming
    /home/alice or root's /srv/backups must not open them to its pool on the next
    regenerate. Who could have written the file: its owner, the owner of each directory on
    its way (who can rename another file into place: an upload the pool wrote, a root-owned
    log holding the customer's text), the owner of each symlink on the way; anyone when a
    group, an ACL or everyone may write one of them.
    told_by: the PhpFacts the path was read from, or that file's system path; None for a
    default place (then only the symlinks on the way to it speak). write: the app writes
    there (then only the pool's `write =` vouches for it, not `read =`)."""
    from .sites import CONFIG

    try:
        canon = site.canonical(path)
    except Exception as exc:  # a symlink loop, a NUL byte
        return None, str(exc)
    inside = any(is_within(canon, r) for r in site.roots)
    # inside the roots a system directory is the site's own (Debian's /usr/share/wordpress)
    why = _unsafe(canon, system_ok=inside)
    if why or inside:
        return canon, why
    vouched = (*site.write_paths, *_pool_temp(site)) if write else \
        (*site.read_paths, *site.write_paths, *_pool_temp(site))
    if any(is_within(canon, p) for p in vouched):
        return canon, None
    tellers = (_writers(site, told_by) if told_by is not None else []) + link_tellers(site, path)
    users = [(uid, role) for uid, role in tellers if uid != 0]
    if not users:
        return canon, None
    remedy = f"(if meant: the pool's {'write' if write else 'read'} = in {CONFIG})"
    if any(is_within(canon, d) for d in SERVICE_STATE):
        return canon, f"a service's state, named on the word of a user (not root's): not the site's {remedy}"
    owner, shared = _owner(site, canon)
    if shared:  # /tmp/php-b made before pool b made it: anyone could have
        return canon, f"inside {shared}, where anyone may make it: not the site's {remedy}"
    for uid, role in users:
        if uid is None or uid != owner:
            return canon, (f"outside the site, owned by {'nobody' if owner is None else f'uid {owner}'}, "
                           f"on the word of {role if uid is None else f'uid {uid}, {role}'}: a site's files may "
                           f"name only their owner's places {remedy}")
    return canon, None


def _pool_temp(site) -> list[str]:
    """The pool's own temp dirs from its config (root's word): Nextcloud's tempdirectory
    there is the admin's /tmp/php-cloud, not a place the customer made first."""
    out = []
    for value in (temp_dir(site), site_ini(site, "upload_tmp_dir")):
        if isinstance(value, str) and value.startswith("/"):
            canon = canonical_or_none(site, value.rstrip("/"))
            if canon and canon not in SHARED_TEMP and not unsafe_path(canon):
                out.append(canon)
    return out


def _teller(site, path: str, ids: tuple, role: str) -> tuple[int | None, str]:
    """(uid, role) of whoever may write the file or directory `path` (ids: its uid, gid and
    mode): its owner's word, or (None, who) when others may write it too: everyone, a group
    (unless it is the owner's private group: Debian's umask 002), or an ACL's users (their
    entries show as the group bits)."""
    uid, gid, mode = ids
    if mode & 0o002:
        return None, f"everyone: {path} is world-writable"
    if mode & 0o020:
        if gid != uid or not _private_group(site.sysroot, gid):
            return None, f"group {gid}: it may write {path}"
        if _has_acl(site.disk(path)):
            return None, f"the users of {path}'s ACL"
    return uid, role


@functools.lru_cache(maxsize=256)
def _private_group(sysroot: str, gid: int) -> bool:
    """Whether group `gid` is user `gid`'s alone: no other user has it as primary group or
    is listed in it (the tree's /etc/passwd and /etc/group; unknown: not private)."""
    base = "" if sysroot in ("/", "") else sysroot.rstrip("/")
    owner, others, found = None, False, False
    try:
        with open(f"{base}/etc/passwd", encoding="utf-8", errors="replace") as f:
            for fields in (line.split(":") for line in f):
                if len(fields) > 3 and fields[2].isdigit() and fields[3].isdigit():
                    if int(fields[2]) == gid:
                        owner = fields[0]
                    elif int(fields[3]) == gid:
                        others = True
        with open(f"{base}/etc/group", encoding="utf-8", errors="replace") as f:
            for fields in (line.rstrip("\n").split(":") for line in f):
                if len(fields) > 3 and fields[2].isdigit() and int(fields[2]) == gid:
                    found = True
                    others = others or bool({m for m in fields[3].split(",") if m} - {owner})
    except OSError:
        return False
    return found and owner is not None and not others


def _has_acl(disk: Path) -> bool:
    try:
        return bool(os.getxattr(disk, "system.posix_acl_access"))
    except OSError:  # none (ENODATA), or a file system without ACLs
        return False


def _writers(site, told_by) -> list[tuple[int | None, str]]:
    """[(uid or None for anyone, role)]: who could have written the file `told_by`."""
    if isinstance(told_by, PhpFacts):
        path, ids = told_by.file, (told_by.uid, told_by.gid, told_by.mode)
    else:
        path = told_by
        try:
            st = site.disk(path).stat()
            ids = (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))
        except (OSError, ValueError):
            ids = (None, None, None)
    if None in ids:
        return [(None, f"nobody: {path} was not read")]
    out = [_teller(site, path, ids, f"owner of {path}")]
    # the directories on the way as named (where a symlink to it may be put) and as resolved
    try:
        named = path.split("/")
        dirs = {site.canonical("/".join(named[:i]) or "/") for i in range(1, len(named))}
        d = posixpath.dirname(site.canonical(path))
    except Exception:  # a loop: the file was read, so it was not one then
        return out + [(None, f"nobody: {path} no longer resolves")]
    while d != "/":
        dirs.add(d)
        d = posixpath.dirname(d)
    out += [_dir_teller(site, d, path) for d in sorted(dirs | {"/"})]
    return out + link_tellers(site, path)


def link_tellers(site, path: str) -> list[tuple[int | None, str]]:
    """Who chose where `path` leads: the owner of each symlink on its way, and whoever may
    replace one (root's relative link moved elsewhere in a site leads elsewhere). Also what
    decides a site root reached through symlinks (sites.build)."""
    from .sites import symlinks

    out = []
    for link in symlinks(site.sysroot, path):
        try:
            out.append((site.entry(link).lstat().st_uid, f"owner of the symlink {link}"))
        except (OSError, ValueError):
            out.append((None, f"nobody: the symlink {link} is gone"))
        out.append(_dir_teller(site, posixpath.dirname(link) or "/", link))
    return out


def _dir_teller(site, d: str, what: str) -> tuple[int | None, str]:
    try:
        st = site.disk(d).stat()
    except (OSError, ValueError):
        return None, f"nobody: {d} is gone"
    mode = stat.S_IMODE(st.st_mode)
    role = f"owner of the directory {d}, who may replace {what}"
    # in a sticky directory (/tmp) only an entry's owner and the directory's may move it
    return (st.st_uid, role) if mode & stat.S_ISVTX else _teller(site, d, (st.st_uid, st.st_gid, mode), role)


def _owner(site, canon: str) -> tuple[int | None, str | None]:
    """(the uid owning `canon` or its nearest existing parent, who may create it; the first
    sticky world-writable directory above it, or None)."""
    owner, p = None, canon
    while True:
        try:
            st = site.disk(p).stat()
        except (OSError, ValueError):
            st = None
        if st is not None:
            if owner is None:
                owner = st.st_uid
            if p != canon and st.st_mode & stat.S_ISVTX and st.st_mode & 0o002:
                return owner, p
        if p == "/":
            return owner, None
        p = posixpath.dirname(p)

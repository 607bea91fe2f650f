"""Build the initramfs: a cached base (host binaries + libraries) and a per-scenario overlay.

The kernel accepts concatenated newc archives and later entries win, so the base archive
(tens of MB, identical for every scenario) is built once and cached; each run only packs
the scenario tree, the plan and the probe script.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import stat
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

# Real Debian binaries, so exec rules in policies see the same paths as on a server
# (a busybox link would be seen by AppArmor as /usr/bin/busybox).
PROGRAMS = [
    "/usr/sbin/apparmor_parser", "/usr/bin/cgi-fcgi", "/usr/bin/dash",
    "/usr/bin/cat", "/usr/bin/ls", "/usr/bin/id", "/usr/bin/whoami", "/usr/bin/nice",
    "/usr/bin/env", "/usr/bin/sleep", "/usr/bin/true", "/usr/bin/false", "/usr/bin/echo",
    "/usr/bin/head", "/usr/bin/grep", "/usr/bin/sed", "/usr/bin/which", "/usr/bin/touch",
    "/usr/bin/rm", "/usr/bin/cwebp", "/usr/bin/bash",
]
# Merged /usr, as on Debian 12.
USR_LINKS = {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64"}

FAKE_SENDMAIL = """#!/bin/sh
# Stand-in for /usr/sbin/sendmail (tests/vm): swallow the message, report success.
cat >/dev/null
exit 0
"""


def _fpm_binaries() -> list[str]:
    return sorted(glob.glob("/usr/sbin/php-fpm[0-9]*"))


def _php_modules() -> list[str]:
    return sorted(glob.glob("/usr/lib/php/[0-9]*/*.so"))


def _ldd(path: str) -> list[str]:
    p = subprocess.run(["ldd", path], capture_output=True, text=True)
    libs = []
    for line in p.stdout.splitlines():
        m = re.search(r"(/\S+)\s+\(0x", line)
        if m:
            libs.append(m.group(1))
    return libs


def _copy_host_file(src: str, root: str):
    """Copy one host file to the same path under root (through the /usr links)."""
    dest = root + src
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    if os.path.lexists(dest):
        return
    if os.path.islink(src):
        target = os.readlink(src)
        os.symlink(target, dest)
        # Follow the chain (e.g. libfoo.so.1 -> libfoo.so.1.2.3).
        _copy_host_file(os.path.normpath(os.path.join(os.path.dirname(src), target)), root)
    else:
        shutil.copy2(src, dest)


def host_files() -> list[str]:
    """Every host file the base archive holds, programs plus what ldd says they need."""
    progs = [p for p in PROGRAMS + _fpm_binaries() if os.path.exists(p)]
    files = set(progs) | set(_php_modules())
    for f in list(files):
        files.update(_ldd(f))
    return sorted(files)


def _copy_tree(src: str, dest: str, skip=lambda rel: False):
    """Merge src over dest, keeping symlinks as links and file ownership and modes.

    Existing directories (or links to directories, like /lib -> usr/lib) are entered, so a
    tree's files land where the running system would put them.
    """
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        if rel != "." and skip(rel):
            dirnames[:] = []
            continue
        ddir = os.path.normpath(os.path.join(dest, rel))
        os.makedirs(ddir, exist_ok=True)
        if rel != "." and not os.path.islink(ddir):
            st = os.lstat(dirpath)
            os.chmod(ddir, stat.S_IMODE(st.st_mode))
            os.lchown(ddir, st.st_uid, st.st_gid)
        for name in list(dirnames):
            s = os.path.join(dirpath, name)
            if os.path.islink(s):  # a link to a directory is copied as a link
                dirnames.remove(name)
                filenames.append(name)
        for name in filenames:
            if skip(os.path.normpath(os.path.join(rel, name))):
                continue
            s, d = os.path.join(dirpath, name), os.path.join(ddir, name)
            if os.path.lexists(d) and not (os.path.isdir(d) and not os.path.islink(d)):
                os.unlink(d)
            if os.path.islink(s):
                os.symlink(os.readlink(s), d)
            else:
                shutil.copy2(s, d)
            st = os.lstat(s)
            os.lchown(d, st.st_uid, st.st_gid)


def _skip_host_etc_php(rel: str) -> bool:
    # The host's pools must not leak into a scenario (they would be started too).
    return bool(re.match(r"^[0-9.]+/fpm/pool\.d(/|$)", rel))


def _skip_host_apparmor(rel: str) -> bool:
    # Only the shared parts: abstractions, tunables, abi. No host profiles.
    return rel.split("/")[0] not in ("abstractions", "tunables", "abi")


def stage_base(root: str):
    for name, target in USR_LINKS.items():
        os.makedirs(os.path.join(root, target), exist_ok=True)
        os.symlink(target, os.path.join(root, name))
    for f in host_files():
        _copy_host_file(f, root)
    os.symlink("dash", os.path.join(root, "usr/bin/sh"))
    # busybox runs the init only; its applets stay out of the system paths.
    shutil.copy2("/usr/bin/busybox", os.path.join(root, "usr/bin/busybox"))
    bb = os.path.join(root, "harness/bb")
    os.makedirs(bb)
    applets = subprocess.run(["/usr/bin/busybox", "--list"], capture_output=True,
                             text=True, check=True).stdout.split()
    for a in applets:
        os.symlink("/usr/bin/busybox", os.path.join(bb, a))
    _copy_tree("/etc/php", os.path.join(root, "etc/php"), _skip_host_etc_php)
    _copy_tree("/etc/apparmor.d", os.path.join(root, "etc/apparmor.d"), _skip_host_apparmor)
    _copy_tree("/etc/apparmor", os.path.join(root, "etc/apparmor"))
    # parser.conf pins the policy features to this file, as on a Debian server.
    if os.path.isdir("/usr/share/apparmor-features"):
        _copy_tree("/usr/share/apparmor-features", os.path.join(root, "usr/share/apparmor-features"))
    # PHP on Debian reads the system tzdata; UTC is enough for the VM.
    for z in ("/usr/share/zoneinfo/UTC", "/usr/share/zoneinfo/Etc/UTC"):
        if os.path.exists(z):
            _copy_host_file(z, root)
    for f in ("/etc/nsswitch.conf", "/etc/passwd", "/etc/group", "/etc/hosts",
              "/etc/ld.so.conf"):
        if os.path.exists(f):
            _copy_host_file(f, root)
    # Always the stand-in (a host MTA would not run here); a scenario tree may bring its own.
    _write(root, "/usr/sbin/sendmail", FAKE_SENDMAIL, 0o755)
    for d, mode in (("dev", 0o755), ("proc", 0o555), ("sys", 0o555), ("run", 0o755),
                    ("tmp", 0o1777), ("var/log", 0o755), ("var/tmp", 0o1777),
                    ("var/spool/fake-mail", 0o1777), ("var/lib/php/sessions", 0o1733),
                    ("root", 0o700)):
        os.makedirs(os.path.join(root, d), exist_ok=True)
        os.chmod(os.path.join(root, d), mode)


def _write(root: str, path: str, text: str, mode: int = 0o644):
    dest = root + path
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    if os.path.lexists(dest):
        os.unlink(dest)
    with open(dest, "w") as f:
        f.write(text)
    os.chmod(dest, mode)


def pack(root: str, out: str):
    """newc cpio of root, uncompressed: the kernel unpacks it faster than it gunzips."""
    names = subprocess.run(["find", ".", "-mindepth", "1"], cwd=root, capture_output=True,
                           check=True).stdout
    tmp = f"{out}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        subprocess.run(["cpio", "--quiet", "-o", "-H", "newc"], cwd=root, input=names,
                       stdout=f, check=True)
    os.replace(tmp, out)


def base_key() -> str:
    """Changes whenever a host file in the base changes (package upgrade)."""
    h = hashlib.sha256()
    h.update(open(__file__, "rb").read())
    for f in host_files():
        st = os.stat(f)
        h.update(f"{f} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def base_archive(cache: str) -> str:
    out = os.path.join(cache, f"base-{base_key()}.cpio")
    if os.path.exists(out):
        return out
    os.makedirs(cache, exist_ok=True)
    for old in glob.glob(os.path.join(cache, "base-*.cpio")):
        os.unlink(old)  # an older host's base: never used again
    # Private stage and temp archive: two test processes may build at once.
    stage = tempfile.mkdtemp(prefix="base-stage-", dir=cache)
    try:
        stage_base(stage)
        pack(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out


def _fpm_users(tree: str) -> set[str]:
    """User and group names the scenario's pools name (they must exist in the VM)."""
    names = set()
    for conf in glob.glob(os.path.join(tree, "etc/php/*/fpm/**/*.conf"), recursive=True):
        section = ""
        for line in open(conf, errors="replace"):
            line = line.split(";", 1)[0].strip()
            m = re.match(r"^\[([^\]]+)\]$", line)
            if m:
                section = m.group(1)
                continue
            m = re.match(r"^(user|group|listen\.owner|listen\.group)\s*=\s*(.+)$", line)
            if m:
                value = m.group(2).strip().strip("\"'").replace("$pool", section)
                if re.match(r"^[a-z_][a-z0-9_.-]{0,31}$", value):
                    names.add(value)
    return names


def accounts(tree: str, host_root: str) -> tuple[str, str, str]:
    """passwd, group and a fake shadow: host's accounts, the tree's, plus pool users.

    The shadow holds no hashes: it exists so "read /etc/shadow" is a meaningful attack.
    """
    def load(path):
        rows = {}
        if os.path.exists(path):
            for line in open(path):
                parts = line.rstrip("\n").split(":")
                if len(parts) >= 3:
                    rows[parts[0]] = parts
        return rows
    pw = load(os.path.join(host_root, "etc/passwd"))
    pw.update(load(os.path.join(tree, "etc/passwd")))
    gr = load(os.path.join(host_root, "etc/group"))
    gr.update(load(os.path.join(tree, "etc/group")))
    used = {int(r[2]) for r in pw.values()} | {int(r[2]) for r in gr.values()}
    next_id = 2000
    for name in sorted(_fpm_users(tree)):
        if name in pw or name in gr:
            continue
        while next_id in used:
            next_id += 1
        used.add(next_id)
        pw[name] = [name, "x", str(next_id), str(next_id), name, "/nonexistent",
                    "/usr/sbin/nologin"]
        gr[name] = [name, "x", str(next_id), ""]
    for name in sorted(_fpm_users(tree)):
        if name not in pw and name in gr:  # a group-only name used as user: make one
            pw[name] = [name, "x", gr[name][2], gr[name][2], name, "/nonexistent",
                        "/usr/sbin/nologin"]
        if name not in gr and name in pw:
            gr[name] = [name, "x", pw[name][3], ""]
    passwd = "".join(":".join(r) + "\n" for r in pw.values())
    group = "".join(":".join(r) + "\n" for r in gr.values())
    shadow = "".join(f"{n}:*:19000:0:99999:7:::\n" for n in pw)
    return passwd, group, shadow


def overlay_archive(tree: str, files: dict, out: str, stage: str):
    """Pack the scenario tree plus harness files {system path: (text, mode)}."""
    shutil.rmtree(stage, ignore_errors=True)
    os.makedirs(stage)
    # Same /usr links as the base so a tree's bin/ or lib/ lands in usr/.
    for name, target in USR_LINKS.items():
        os.makedirs(os.path.join(stage, target), exist_ok=True)
        os.symlink(target, os.path.join(stage, name))
    _copy_tree(tree, stage)
    for path, (text, mode) in files.items():
        _write(stage, path, text, mode)
    pack(stage, out)

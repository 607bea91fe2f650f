"""The web servers' readings `generate` keeps (webcache.py): used while nothing they were read
from changed, and never when a file, a directory listing, a link or the cache's owner did.

Each test plants a marker in the kept reading (a server name no config holds): `status`
showing it proves the kept reading was used; the real name proves the configs were read.
These runs leave PHP_FPM_APPARMOR_CHECK_CACHE unset (the suite sets it: it would read
afresh and fail on the marker); `generate` runs with it, so a tree just written is kept."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from apptrees import needs_root
from php_fpm_apparmor import nginx, webcache
from php_fpm_apparmor.webserver import RACY_NS, UNKNOWN, Files, WebConfig, digest, signature
from test_webserver import PLAIN_NGINX, _pools_without_roots
from webtrees import corpus, nginx_tree

needs_nginx = pytest.mark.skipif(not shutil.which("nginx"), reason="nginx not installed (tools/bootstrap)")
LIVE = {webcache.CHECK: ""}  # as on a host: the kept reading is used without a second look
MARK = "kept.invalid"


def _kept_tree(tmp_path, cli):
    root = _pools_without_roots(tmp_path / "root")
    nginx_tree(root, {**corpus("nginx", "blog", "cloud"), "plain": PLAIN_NGINX})
    proc = cli("generate", root=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cache = root / webcache.CACHE.lstrip("/")
    assert cache.stat().st_mode & 0o777 == 0o600
    data = json.loads(cache.read_text())
    assert "/etc/nginx/sites-enabled" in data["seen"] and "/etc/nginx/sites-enabled/blog" in data["seen"]
    _plant(cache, data)
    return root, cache


def _plant(cache, data: dict) -> None:
    """The kept reading again, blog's vhost renamed to MARK (a name no config holds)."""
    for v in data["vhosts"]:
        if "blog.example" in v["names"]:
            v["names"] = [MARK]
    cache.write_text(json.dumps(data))


def _blog_vhosts(cli, root) -> list[str]:
    proc = cli("--json", "status", root=root, env=LIVE)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {r["pool"]: r for r in json.loads(proc.stdout)}["blog"]["vhosts"]


@needs_nginx
def test_kept_reading_used_until_a_file_changes(tmp_path, cli):
    root, _ = _kept_tree(tmp_path, cli)
    assert _blog_vhosts(cli, root) == [MARK]
    with open(root / "etc/nginx/sites-available/blog", "a") as f:  # through the sites-enabled link
        f.write("# edited\n")
    assert _blog_vhosts(cli, root) == ["blog.example"]


@needs_nginx
def test_every_applying_command_keeps_its_reading(tmp_path, cli):
    """`complain` applies as `generate` does (apply.apply): the next status takes its reading."""
    root = _pools_without_roots(tmp_path / "root")
    nginx_tree(root, {**corpus("nginx", "blog", "cloud"), "plain": PLAIN_NGINX})
    cache = root / webcache.CACHE.lstrip("/")
    assert cli("generate", "--dry-run", root=root).returncode == 0 and not cache.exists()  # nothing applied
    proc = cli("complain", "blog", root=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(cache.read_text())
    assert "/etc/nginx/sites-enabled/blog" in data["seen"]
    _plant(cache, data)
    assert _blog_vhosts(cli, root) == [MARK]


@pytest.mark.parametrize("change", ["site added", "link retargeted", "snippet edited", "main file gone"])
@needs_nginx
def test_kept_reading_dropped_when_what_it_was_read_from_changes(tmp_path, cli, change):
    root, _ = _kept_tree(tmp_path, cli)
    assert _blog_vhosts(cli, root) == [MARK]
    etc = root / "etc/nginx"
    if change == "site added":  # a new name in a globbed directory
        (etc / "sites-enabled/extra").symlink_to("/etc/nginx/sites-available/default")
    elif change == "link retargeted":  # same size and times: another file
        shutil.copy2(etc / "sites-available/blog", etc / "sites-available/blog2")
        (etc / "sites-enabled/blog").unlink()
        (etc / "sites-enabled/blog").symlink_to("/etc/nginx/sites-available/blog2")
    elif change == "snippet edited":  # a file included from the vhost
        with open(etc / "snippets/fastcgi-php.conf", "a") as f:
            f.write("# edited\n")
    else:  # read as Debian's nginx.conf would be: the same vhosts, but not the same reading
        (etc / "nginx.conf").unlink()
    assert _blog_vhosts(cli, root) == ["blog.example"]


@needs_root
@pytest.mark.parametrize("how", ["owner", "mode", "directory"])
@needs_nginx
def test_a_kept_reading_someone_else_could_write_is_not_used(tmp_path, cli, how):
    root, cache = _kept_tree(tmp_path, cli)
    if how == "owner":
        os.chown(cache, 1234, 1234)
    elif how == "mode":
        cache.chmod(0o620)
    else:
        cache.parent.chmod(0o777)
    assert _blog_vhosts(cli, root) == ["blog.example"]


@needs_nginx
def test_check_reads_afresh_and_clean_forgets(tmp_path, cli):
    """With the suite's check on, a kept reading that differs from the configs is an error,
    not a silent answer; `clean` removes the kept reading with the hats."""
    root, cache = _kept_tree(tmp_path, cli)
    proc = cli("--json", "status", root=root)
    assert proc.returncode != 0 and "differs from a fresh one" in proc.stderr
    cli("clean", root=root)
    assert not cache.exists()
    assert _blog_vhosts(cli, root) == ["blog.example"]


@needs_nginx
def test_a_file_changed_within_one_timestamp_tick_is_told_by_its_hash(tmp_path, cli):
    """A file read less than a second after it changed is kept with the hash of its bytes: a
    second write in the same tick (same size, same times) leaves the signature as it was."""
    root, cache = _kept_tree(tmp_path, cli)
    vhost = root / "etc/nginx/sites-available/blog"
    before = vhost.read_bytes()
    vhost.write_bytes(before.replace(b"blog.example", b"blog.exampl3", 1))  # the same size

    def as_if_same_tick(content: bytes):
        data = json.loads(cache.read_text())
        key = "/etc/nginx/sites-enabled/blog"
        data["seen"][key] = signature(str(vhost)) + [digest(content)]
        cache.write_text(json.dumps(data))

    as_if_same_tick(before)  # what was read then: not what is there now
    assert _blog_vhosts(cli, root) == ["blog.exampl3"]
    root, cache = _kept_tree(tmp_path / "again", cli)
    vhost = root / "etc/nginx/sites-available/blog"
    as_if_same_tick(vhost.read_bytes())  # unchanged since
    assert _blog_vhosts(cli, root) == [MARK]


@needs_nginx
def test_a_hash_is_dropped_once_its_file_has_settled(tmp_path, cli, monkeypatch):
    """A hash is needed only while a write could still share its file's timestamps: a run
    that finds the file unchanged more than a second after them keeps the signature alone
    (every later use would read and hash it again)."""
    root, cache = _kept_tree(tmp_path, cli)
    key = "/etc/nginx/sites-enabled/blog"
    vhost = root / "etc/nginx/sites-available/blog"
    sig = signature(str(vhost))
    data = json.loads(cache.read_text())
    data["seen"][key] = sig + [digest(vhost.read_bytes())]
    cache.write_text(json.dumps(data))
    changed = max(sig[3], sig[4])
    monkeypatch.setattr(time, "time_ns", lambda: changed + RACY_NS // 2)
    assert webcache.kept(str(root)).seen[key] == sig + [digest(vhost.read_bytes())]  # still within its tick
    monkeypatch.setattr(time, "time_ns", lambda: changed + 2 * RACY_NS)
    web = webcache.kept(str(root))
    assert web.vhosts == webcache.kept(str(root)).vhosts and web.seen[key] == sig
    assert webcache.keep(str(root), web)
    assert json.loads(cache.read_text())["seen"][key] == sig
    monkeypatch.undo()
    assert _blog_vhosts(cli, root) == [MARK]  # the reading kept that way is still used


def _dumped(tmp_path):
    """A tree and what `nginx -T` prints of it: the live path's reading (split_dump)."""
    root = tmp_path / "root"
    sites = root / "etc/nginx/sites-enabled"
    sites.mkdir(parents=True)
    (root / "etc/nginx/nginx.conf").write_text("http {\n  include /etc/nginx/sites-enabled/*;\n}\n")
    for name in ("a", "b"):
        (sites / name).write_text(f"server {{ server_name {name}.example; }}\n")
    dump = {f"/etc/nginx/{p}": (root / "etc/nginx" / p).read_text()
            for p in ("nginx.conf", "sites-enabled/a", "sites-enabled/b")}
    return root, dump


def test_a_dump_just_written_is_vouched_for_by_its_hashes(tmp_path):
    """On the live system nginx reads the files (`nginx -T`), then we look: a file or
    directory changed just before is kept with the hash of what nginx printed (the file's
    bytes) and of our own listing, when it agrees with the files nginx included."""
    root, dump = _dumped(tmp_path)
    seen = {}
    files = Files(str(root), [], dump, seen)
    assert nginx.Reader(files, []).load()
    assert UNKNOWN not in seen and all(len(seen[p]) == 7 for p in dump)
    assert len(seen["/etc/nginx/sites-enabled"]) == 7
    assert all(webcache._holds(files.disk(p), sig) for p, sig in seen.items())
    vhost = root / "etc/nginx/sites-enabled/a"
    vhost.write_text(vhost.read_text().replace("a.example", "z.example"))  # the same size
    sig = seen["/etc/nginx/sites-enabled/a"]
    assert not webcache._holds(str(vhost), signature(str(vhost)) + sig[6:])  # as if the same tick


def test_a_directory_nginx_listed_otherwise_is_not_kept(tmp_path):
    root, dump = _dumped(tmp_path)
    (root / "etc/nginx/sites-enabled/c").write_text("server { }\n")  # after nginx -T printed
    seen = {}
    nginx.Reader(Files(str(root), [], dump, seen), []).load()
    assert UNKNOWN in seen
    assert not webcache.keep(str(root), WebConfig(seen=seen))


def test_the_kept_readings_directory_is_writable_by_its_owner_alone_whatever_the_umask(tmp_path):
    """An admin's umask 002 must not leave a directory its group may write: the reading
    in it would then never be used."""
    root = tmp_path / "root"
    old = os.umask(0o002)
    try:
        assert webcache.keep(str(root), WebConfig(seen={"/etc/nginx/nginx.conf": None}))
        cache = root / webcache.CACHE.lstrip("/")
        cache.parent.chmod(0o775)  # made so before: mended on the next keep
        assert webcache.keep(str(root), WebConfig(seen={"/etc/nginx/nginx.conf": None}))
    finally:
        os.umask(old)
    assert cache.parent.stat().st_mode & 0o777 == 0o755 and cache.stat().st_mode & 0o777 == 0o600
    assert webcache.kept(str(root)) == WebConfig()

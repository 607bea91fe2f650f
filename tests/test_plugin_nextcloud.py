"""Nextcloud: detection from its markers, config.php parsed (never run), data outside the
web root, helpers in child profiles, code and config writes off by default."""

import pytest

import apptrees as at
from apptrees import needs_parser
from php_fpm_apparmor import evaluate
from php_fpm_apparmor_plugins import nextcloud

R, D = "/var/www/cloud", "/srv/nextcloud-data"


def build(tmp_path, settings=None, **kw):
    at.nextcloud(tmp_path, R, **kw)
    s = at.site(tmp_path, "cloud", [R], settings=settings)
    return (s,) + at.build(s)


def app_of(found):
    return next(a for a in found if a.name == "nextcloud")


def test_detected_with_version_and_settings(tmp_path):
    s, found, pol, text = build(tmp_path)
    app = app_of(found)
    assert app.version == "30.0.4"
    assert app.info["data"] == D
    assert app.info["apps"] == [(R + "/apps", False), (R + "/custom_apps", True)]
    assert app.info["problems"] == []


def test_owncloud_is_not_nextcloud(tmp_path):
    s, found, pol, text = build(tmp_path, vendor="owncloud")
    assert found == []


def test_needs_occ_too(tmp_path):
    at.nextcloud(tmp_path, R)
    (tmp_path / R.lstrip("/") / "occ").unlink()
    found, _, _ = at.build(at.site(tmp_path, "cloud", [R]))
    assert found == []


@pytest.mark.parametrize("row", nextcloud.EXPECTATIONS, ids=lambda r: f"{r.op}-{r.expect}-{r.target}")
def test_expectations_static(tmp_path, row):
    s, found, pol, text = build(tmp_path)
    exp = row.resolve(root=R, data=D, other="/var/www/blog", content="/nowhere")
    assert at.judge(text, "cloud", exp, s.sysroot) == (exp.expect == "allow"), exp.why


def test_data_dir_is_the_named_exception_and_invariants_hold(tmp_path):
    s, found, pol, text = build(tmp_path)
    assert [e.path for e in pol.exceptions if e.source == "nextcloud"] == [D + "/**"]
    assert at.invariant_problems((s, pol, text)) == []


def test_data_inside_webroot_is_reported(tmp_path):
    s, found, pol, text = build(tmp_path, data=R + "/data")
    findings = nextcloud.php_fpm_apparmor_check(s, app_of(found))
    assert any("inside the web root" in f for f in findings)


def test_config_read_with_lock_and_config_writes_flag(tmp_path):
    s, found, pol, text = build(tmp_path)
    hat = evaluate.parse(text)["php-fpm//cloud"]
    assert evaluate.allows(hat, "lock", R + "/config/config.php")
    assert evaluate.allows(hat, "lock", R + "/config/s3.config.php")
    assert not evaluate.allows(hat, "write", R + "/config/config.php")
    s, found, pol, text = build(tmp_path / "w", settings={"config_writes": "yes"})
    hat = evaluate.parse(text)["php-fpm//cloud"]
    assert evaluate.allows(hat, "write", R + "/config/config.php")
    assert not evaluate.allows(hat, "write", R + "/config/other.php")
    assert at.invariant_problems((s, pol, text)) == []


def test_code_writes_open_only_writable_apps_paths(tmp_path):
    s, found, pol, text = build(tmp_path, settings={"code_writes": "yes"})
    hat = evaluate.parse(text)["php-fpm//cloud"]
    assert evaluate.allows(hat, "write", R + "/custom_apps/news/appinfo/app.php")
    assert not evaluate.allows(hat, "write", R + "/apps/files/appinfo/app.php")
    assert at.invariant_problems((s, pol, text)) == []


def test_hostile_and_computed_config_values(tmp_path):
    extra = ("  'tempdirectory' => '/etc/cron.d',\n"
             "  'logfile' => getenv('LOG'),\n"
             "  'preview_ffmpeg_path' => \"/usr/bin/$x\",\n")
    s, found, pol, text = build(tmp_path, extra=extra, data="/")
    app = app_of(found)
    assert app.info["data"] is None and app.info["tempdirectory"] is None
    findings = nextcloud.php_fpm_apparmor_check(s, app)
    assert any("'datadirectory'" in f and "config.php" in f for f in findings)
    assert any("'tempdirectory'" in f and "/etc" in f for f in findings)
    hat = evaluate.parse(text)["php-fpm//cloud"]
    assert not evaluate.allows(hat, "write", "/etc/cron.d/evil")
    assert not evaluate.allows(hat, "write", "/x")


@pytest.mark.parametrize("temp", ["/var/tmp", "/tmp/", "/dev/shm"])
def test_every_pools_temp_dir_is_not_one_pools_tempdirectory(tmp_path, temp):
    """'tempdirectory' => '/var/tmp' would make the whole shared temp dir this pool's own,
    writable and excepted for code (Nextcloud unpacks PHP there): a dir of its own inside
    it is fine (below), the whole of it is not."""
    s, found, pol, text = build(tmp_path, extra=f"  'tempdirectory' => '{temp}',\n")
    app = app_of(found)
    assert app.info["tempdirectory"] is None
    said = [f for f in nextcloud.php_fpm_apparmor_check(s, app) if "'tempdirectory'" in f]
    assert said and (temp != "/var/tmp" or "every pool's temp directory" in said[0]), said
    hat = evaluate.parse(text)["php-fpm//cloud"]
    assert not evaluate.allows(hat, "write", temp.rstrip("/") + "/x.php")
    assert all(d.path.rstrip("/") != temp.rstrip("/") for d in pol.data_dirs)


@pytest.mark.parametrize("path,runs", [
    (R + "/bin/ffmpeg", False),  # the site's own file: its owner's native code
    ("/opt/ffmpeg/ffmpeg", False),  # installed, but group-writable
    ("/usr/local/bin/ffmpeg", True),  # root's, writable by root alone
])
def test_a_configured_helper_program_runs_only_if_root_installed_it(tmp_path, path, runs):
    import os
    if runs and os.geteuid() != 0:
        pytest.skip("root's program: the tree's files must be root's (run as root)")
    disk = tmp_path / path.lstrip("/")
    disk.parent.mkdir(parents=True, exist_ok=True)
    disk.write_bytes(b"\x7fELF")
    disk.chmod(0o775 if path.startswith("/opt") else 0o755)
    s, found, pol, text = build(tmp_path, extra=f"  'preview_ffmpeg_path' => '{path}',\n")
    hat = evaluate.parse(text)["php-fpm//cloud"]
    assert (evaluate.exec_transition(hat, path) is not None) is runs, text
    problems = app_of(found).info["problems"]
    assert any("'preview_ffmpeg_path'" in p and "writable by root alone" in p for p in problems) is not runs


@at.needs_root
@pytest.mark.parametrize("key,value,config_owner,dir_owner,opened", [
    ("datadirectory", D, 33, 33, True),  # www-data's config, www-data's data: the usual setup
    ("datadirectory", D, 33, 1002, False),  # another user's directory
    ("datadirectory", D, 33, 0, False),  # root's, named by the web user's config
    ("logfile", "/home/alice/nc.log", 33, 1002, False),
    ("tempdirectory", "/srv/nc-tmp", 33, 0, False),
    ("datadirectory", D, 0, 0, True),  # root's config.php: the admin's word
])
def test_config_php_opens_only_its_owners_dirs_outside_the_site(tmp_path, key, value, config_owner, dir_owner,
                                                                 opened):
    """config.php belongs to the web user (Nextcloud rewrites it): the places it names
    outside the site are opened only if that user owns them, unless root wrote it."""
    import os
    extra = "" if key == "datadirectory" else f"  '{key}' => '{value}',\n"
    root = at.nextcloud(tmp_path, R, extra=extra)
    os.chown(root / "config/config.php", config_owner, config_owner)
    place = tmp_path / value.lstrip("/")
    if value.endswith(".log"):
        place.parent.mkdir(parents=True, exist_ok=True)
        place.write_text("")
        place = place.parent
    place.mkdir(parents=True, exist_ok=True)
    for p in [place, *place.iterdir()]:
        os.chown(p, dir_owner, dir_owner)
    s = at.site(tmp_path, "cloud", [R])
    found, pol, text = at.build(s)
    app = app_of(found)
    got = app.info["data" if key == "datadirectory" else key]
    assert (got == value) is opened
    hat = evaluate.parse(text)["php-fpm//cloud"]
    assert evaluate.allows(hat, "write", value if value.endswith(".log") else value + "/x.txt") is opened, text
    said = [p for p in app.info["problems"] if f"'{key}'" in p and "config.php" in p]
    assert bool(said) is not opened and all(f"owned by uid {dir_owner}" in p for p in said), said


@at.needs_root
def test_config_php_linked_to_another_users_config_opens_nothing(tmp_path):
    """The customer links config/config.php to alice's Nextcloud config.php: its owner
    (alice) owns the data dir it names, but the link and config/ are the customer's."""
    import os
    root = at.nextcloud(tmp_path, R, data="/var/www/cloud-data")
    at.nextcloud(tmp_path, "/home/alice/cloud", data="/home/alice/ncdata")
    for base, uid in ((root, 1001), (tmp_path / "home/alice", 1002)):
        for p in [base, *base.rglob("*")]:
            os.lchown(p, uid, uid)
    config = root / "config/config.php"
    config.unlink()
    config.symlink_to("../../../../home/alice/cloud/config/config.php")  # (in the tree: --root)
    os.lchown(config, 1001, 1001)
    found, pol, text = at.build(at.site(tmp_path, "cloud", [R]))
    app = app_of(found)
    assert app.info["data"] is None
    hat = evaluate.parse(text)["php-fpm//cloud"]
    assert not evaluate.allows(hat, "read", "/home/alice/ncdata/alice/files/tax.pdf")
    assert any("'datadirectory'" in p and "uid 1001" in p for p in app.info["problems"]), app.info["problems"]


def test_extra_config_files_merge_like_nextcloud(tmp_path):
    at.nextcloud(tmp_path, R)
    (tmp_path / R.lstrip("/") / "config/zz.config.php").write_text(
        "<?php\n$CONFIG = ['datadirectory' => '/srv/other-data', 'tempdirectory' => '/var/tmp/nc'];\n")
    s = at.site(tmp_path, "cloud", [R])
    found, pol, text = at.build(s)
    app = app_of(found)
    assert app.info["data"] == "/srv/other-data"
    hat = evaluate.parse(text)["php-fpm//cloud"]
    assert evaluate.allows(hat, "write", "/var/tmp/nc/upload-chunk-1")
    assert at.invariant_problems((s, pol, text)) == []


def test_helpers_run_in_their_own_children_when_installed(tmp_path):
    for p in ("usr/bin/ffmpeg", "usr/bin/smbclient", "usr/bin/stdbuf",
              "usr/lib/libreoffice/program/soffice"):
        f = tmp_path / p
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"\x7fELF")
    (tmp_path / "usr/bin/libreoffice").symlink_to("../lib/libreoffice/program/soffice")
    s, found, pol, text = build(tmp_path)
    profiles = evaluate.parse(text)
    hat, sh = profiles["php-fpm//cloud"], profiles["php-fpm//cloud_sh"]
    assert evaluate.exec_transition(hat, "/usr/bin/ffmpeg")[1] == "php-fpm//cloud_ffmpeg"
    assert evaluate.exec_transition(sh, "/usr/lib/libreoffice/program/soffice")[1] == \
        "php-fpm//cloud_office"
    assert evaluate.exec_transition(sh, "/usr/bin/smbclient")[1] == "php-fpm//cloud_smbclient"
    ff = profiles["php-fpm//cloud_ffmpeg"]
    assert evaluate.allows(ff, "read", D + "/alice/files/movie.mp4")
    assert evaluate.allows(ff, "write", "/tmp/oc_tmp_Ab12Cd")
    assert not evaluate.allows(ff, "write", D + "/alice/files/movie.mp4")
    assert not evaluate.allows(ff, "read", R + "/config/config.php")
    office = profiles["php-fpm//cloud_office"]
    assert evaluate.allows(office, "write", "/tmp/oc_tmp_x-folder-nextcloud-office-profile-1/user/registrymodifications.xcu")
    assert not evaluate.allows(office, "read", "/var/www/cloud/config/config.php")
    smb = profiles["php-fpm//cloud_smbclient"]
    assert not evaluate.allows(smb, "read", D + "/alice/files/a.txt")
    assert at.invariant_problems((s, pol, text)) == []
    assert at.compile_error(text, "cloud", s.sysroot) is None


def test_no_helpers_installed_means_no_children(tmp_path):
    s, found, pol, text = build(tmp_path)
    names = {p.name for p in pol.profiles}
    assert not names & {"cloud_ffmpeg", "cloud_office", "cloud_smbclient"}


def test_check_findings(tmp_path):
    s, found, pol, text = build(tmp_path)
    findings = nextcloud.php_fpm_apparmor_check(s, app_of(found))
    assert any("config_is_read_only" in f for f in findings)
    assert any("appstoreenabled" in f for f in findings)
    s2 = at.site(tmp_path, "cloud", [R], env={})
    assert any("env[PATH]" in f for f in nextcloud.php_fpm_apparmor_check(s2, app_of(found)))


@needs_parser
def test_compiles(tmp_path):
    s, found, pol, text = build(tmp_path, settings={"code_writes": "yes", "config_writes": "yes"})
    assert at.compile_error(text, "cloud", s.sysroot) is None

"""Nextcloud: data directory, temp files, config reads; helpers in child profiles.

From its source (nextcloud/server lib/private/Config.php, TempManager.php,
Preview/Office.php, Preview/Movie.php, config/config.sample.php):
- config/config.php plus config/*.config.php, read with flock(LOCK_SH) (so `rk`), rewritten
  in place only by setup, the updater and settings changes: `config_writes`;
- `datadirectory` (default <root>/data): every user file, previews (appdata_*), and the
  log (`logfile`, default <data>/nextcloud.log). Users may store files of any name, so the
  whole tree is writable and declared as an exception; it belongs outside the web root;
- `apps_paths` entries with 'writable' => true receive app-store installs (PHP): only with
  `code_writes`; without apps_paths, <root>/apps is the writable one;
- temp files: `tempdirectory`, else upload_tmp_dir, TMP/TEMP/TMPDIR, sys_get_temp_dir(),
  as oc_tmp_* files and oc_tmp_*-folder* directories;
- helpers: LibreOffice via exec() (so /bin/sh -> soffice), ffmpeg via proc_open() with an
  argv (direct), smbclient (icewind/smb, through the shell and stdbuf). Each runs in its own
  child profile that sees the data and its temp files only.
"""

from __future__ import annotations

import re

from php_fpm_apparmor.api import (UNKNOWN, App, clean_version, DataDir, ExecRule, Expectation, FileRule,
                                  find_binaries, hookimpl, IncludeRule, is_within, lit, named_path,
                                  NetworkRule, read_php, site_ini, under, WriteException)

__version__ = "1.0"
NAME = "nextcloud"
SHELL = "sh"
MAX_EXTRA_CONFIGS = 32  # config/*.config.php files read; more is not a real setup


@hookimpl
def php_fpm_apparmor_detect(site):  # no `found`: asked once per site
    apps = []
    for root in site.roots:
        version_php = site.disk(root, "version.php")
        if not (version_php.is_file() and site.disk(root, "occ").is_file()):
            continue
        facts = read_php(version_php, root + "/version.php")
        if facts.assigns.get("$vendor") != "nextcloud":
            continue  # ownCloud has the same layout with $vendor = 'owncloud'
        apps.append(App(NAME, root, version=clean_version(facts.assigns.get("$OC_VersionString")),
                        plugin=NAME, info=_settings(site, root)))
    return apps


def _natural(name: str):
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def _read_config(site, root: str, config_dir: str, problems: list) -> tuple[dict, dict, dict]:
    """Merged $CONFIG of config.php and *.config.php (Config::readData), where each key is
    (file:line) and the file that set it (its PhpFacts: whose word a path is)."""
    merged: dict = {}
    where: dict = {}
    told: dict = {}
    files = [config_dir + "/config.php"]
    disk_dir = site.disk(config_dir)
    try:
        extra = sorted((p.name for p in disk_dir.iterdir() if p.name.endswith(".config.php")),
                       key=_natural)
    except OSError:
        extra = []
    files += [config_dir + "/" + n for n in extra[:MAX_EXTRA_CONFIGS]]
    for path in files:
        facts = read_php(site.disk(path), path, serverroot=root)
        problems += facts.problems
        config = facts.assigns.get("$CONFIG")
        if facts.exists and not isinstance(config, dict):
            problems.append(f"{facts.where('$CONFIG')}: no literal $CONFIG array found: "
                            "php-fpm-apparmor assumes Nextcloud's defaults")
            continue
        for key, value in (config or {}).items():
            merged[key] = value
            where[key] = facts.where("$CONFIG")
            told[key] = facts
    return merged, where, told


# Where a helper program config.php names may live: installed software, not a site's files.
PROGRAM_DIRS = ("/usr/", "/bin/", "/sbin/", "/opt/")


def _settings(site, root: str) -> dict:
    problems: list[str] = []
    env = getattr(site.pool, "env", None) or {}
    config_dir = root + "/config"
    custom = env.get("NEXTCLOUD_CONFIG_DIR") if isinstance(env, dict) else None
    if custom:
        canon, why = named_path(site, custom.rstrip("/"), write=site.flag("config_writes"))
        if why:
            problems.append(f"pool env NEXTCLOUD_CONFIG_DIR {custom!r} is {why}: ignored")
        else:
            config_dir = canon
    config, where, told = _read_config(site, root, config_dir, problems)

    def path_value(key, default):
        value, teller = config.get(key, default), told.get(key)  # a default is nobody's word
        if value is UNKNOWN or not isinstance(value, str) or not value.startswith("/"):
            if key in config:
                problems.append(f"{where[key]}: '{key}' is not a literal absolute path: "
                                f"assuming {default}")
            value, teller = default, None
        if value is None:
            return None
        canon, why = named_path(site, value.rstrip("/"), teller, write=True)  # data, log, temp
        if why:
            problems.append(f"{where.get(key, config_dir + '/config.php')}: '{key}' {value!r} is "
                            f"{why}: no rules for it")
            return None
        return canon

    data = path_value("datadirectory", root + "/data")
    logfile = path_value("logfile", None)
    tempdirectory = path_value("tempdirectory", None)

    def program(key):
        """A helper program config.php names: only an installed one (root's, in PROGRAM_DIRS,
        writable by root alone). A site's own file there would run its owner's native code
        (a miner) as this pool's helper."""
        value = config.get(key)
        if value is None:
            return None
        here = where.get(key, config_dir + "/config.php")
        if value is UNKNOWN or not isinstance(value, str) or not value.startswith("/"):
            problems.append(f"{here}: '{key}' is not a literal absolute path: the installed one is used")
            return None
        try:
            canon = site.canonical(value)
            st = site.disk(canon).stat()
        except Exception:  # missing, a symlink loop
            problems.append(f"{here}: '{key}' {value!r} is not there: the installed one is used")
            return None
        if not canon.startswith(PROGRAM_DIRS) or st.st_uid != 0 or st.st_mode & 0o022:
            problems.append(f"{here}: '{key}' {value!r} is not a program root installed (in "
                            f"{', '.join(PROGRAM_DIRS)}, writable by root alone): the installed one is used")
            return None
        return canon

    office = program("preview_libreoffice_path")
    ffmpeg = program("preview_ffmpeg_path")
    apps = []
    raw_apps = config.get("apps_paths")
    if raw_apps is None:
        apps.append((root + "/apps", True))  # OC::initPaths(): the default is writable
    elif isinstance(raw_apps, dict):
        for entry in raw_apps.values():
            if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
                problems.append(f"{where['apps_paths']}: an apps_paths entry is not literal: "
                                "skipped")
                continue
            canon, why = named_path(site, entry["path"].rstrip("/"), told["apps_paths"],
                                    write=entry.get("writable") is True)
            if why:
                problems.append(f"{where['apps_paths']}: apps path {entry['path']!r} is {why}: skipped")
                continue
            apps.append((canon, entry.get("writable") is True))
    return {
        "config_dir": config_dir,
        "data": data,
        "logfile": logfile,
        "tempdirectory": tempdirectory,
        "temp": tempdirectory or _php_temp(site),
        "apps": apps,
        "office": office,
        "ffmpeg": ffmpeg,
        "read_only": config.get("config_is_read_only") is True,
        "appstore": config.get("appstoreenabled", True) is not False,
        "problems": problems,
    }


def _php_temp(site) -> str:
    """TempManager::getTempBaseDir() without tempdirectory: upload_tmp_dir, TMP..., /tmp."""
    env = getattr(site.pool, "env", None) or {}
    candidates = [site_ini(site, "upload_tmp_dir")]
    if isinstance(env, dict):
        candidates += [env.get("TMP"), env.get("TEMP"), env.get("TMPDIR")]
    candidates.append(site_ini(site, "sys_temp_dir"))
    for value in candidates:
        if isinstance(value, str) and value.startswith("/"):
            return site.canonical(value.rstrip("/") or "/tmp")
    return "/tmp"


def _file(path, perms, why, profile="hat", owner=True):
    return FileRule(path=path, perms=perms, owner=owner, source=NAME, why=why, profile=profile)


@hookimpl
def php_fpm_apparmor_rules(site, app):
    if app.name != NAME:
        return []
    info = app.info
    root = app.root
    rules = []
    inside = lambda p: any(is_within(p, r) for r in site.roots)  # noqa: E731
    cfg = info["config_dir"]
    if not inside(cfg):
        rules.append(_file(under(cfg, "/"), "r", "NEXTCLOUD_CONFIG_DIR", owner=False))
    rules.append(_file(under(cfg, "/{,*.}config.php"), "rk",
                       "Config::readData() takes a shared lock", owner=False))
    if info["data"]:
        rules += [
            _file(under(info["data"], "/"), "rw", "data directory"),
            _file(under(info["data"], "/**"), "rwk",
                  "user files of any name, previews (appdata_*), nextcloud.log"),
        ]
    if info["logfile"] and not (info["data"] and is_within(info["logfile"], info["data"])):
        rules.append(_file(lit(info["logfile"]), "rw", "'logfile'"))
    if info["tempdirectory"]:
        rules += [_file(under(info["tempdirectory"], "/"), "rw", "'tempdirectory'"),
                  _file(under(info["tempdirectory"], "/**"), "rw", "'tempdirectory'")]
    for path, writable in info["apps"]:
        if not inside(path):
            rules += [_file(under(path, "/"), "r", "apps outside the web root", owner=False),
                      _file(under(path, "/**"), "r", "apps outside the web root", owner=False)]
        if writable and site.flag("code_writes"):
            rules += [_file(under(path, "/"), "rw", "app store installs"),
                      _file(under(path, "/**"), "rw", "app store installs and updates")]
    # The dirs written outside the site roots are this pool's own (no other pool may reach
    # them, and the pool may write nowhere else).
    outside = [(info["data"], "data directory"), (info["logfile"], "'logfile'"),
               (info["tempdirectory"], "'tempdirectory'")]
    if site.flag("code_writes"):
        outside += [(path, "app store installs") for path, writable in info["apps"] if writable]
    if site.flag("config_writes"):
        outside.append((cfg, "setup and settings rewrite config.php"))
    for path, why in outside:
        if path and not inside(path):
            rules.append(DataDir(path=path, why=why))
    if site.flag("config_writes"):
        rules += [_file(lit(cfg + "/config.php"), "rwk", "setup and settings rewrite config.php"),
                  _file(lit(cfg + "/CAN_INSTALL"), "w", "setup removes it when done"),
                  _file(lit(root + "/.htaccess"), "rw", "setup writes rewrite rules (Apache)"),
                  _file(lit(root + "/.user.ini"), "rw", "setup writes upload limits")]
    rules += _helpers(site, app)
    return rules


def _temp_rules(info, child) -> list:
    t = info["temp"]
    return [_file(under(t, "/oc_tmp_*"), "rw", "TempManager files", profile=child),
            _file(under(t, "/oc_tmp_*/"), "rw", "TempManager folders", profile=child),
            _file(under(t, "/oc_tmp_*/**"), "rwk", "TempManager folders", profile=child)]


def _child_base(child, why) -> list:
    return [IncludeRule(name="abstractions/base", profile=child, source=NAME, why=why)]


def _helpers(site, app) -> list:
    info = app.info
    rules = []
    def data_read(child):
        return [_file(under(info["data"], "/**"), "r", "files to preview", profile=child,
                      owner=False)] if info["data"] else []
    # LibreOffice: exec() -> /bin/sh -c "soffice ..." -> child "office".
    office = [info["office"]] if info["office"] else find_binaries(site, ["libreoffice", "soffice"])
    office = [p for p in office if site.disk(p).is_file()]
    if office:
        child = "office"
        for path in office:
            rules.append(ExecRule(path=lit(path), mode="Px", target=child, profile=SHELL,
                                  source=NAME, why="document previews (LibreOffice)"))
        rules += _child_base(child, "LibreOffice")
        rules += [
            IncludeRule(name="abstractions/fonts", profile=child, source=NAME, why="rendering"),
            FileRule(path="/usr/lib/libreoffice/**", perms="mr", profile=child, source=NAME,
                     why="LibreOffice itself"),
            FileRule(path="/usr/share/libreoffice/**", perms="r", profile=child, source=NAME,
                     why="LibreOffice data"),
            FileRule(path="/etc/libreoffice/**", perms="r", profile=child, source=NAME,
                     why="LibreOffice config"),
            ExecRule(path="/usr/lib/libreoffice/program/{oosplash,soffice.bin}", mode="ix",
                     profile=child, source=NAME, why="the soffice launcher starts these"),
        ]
        for path in find_binaries(site, ["dash", "sed", "grep", "uname", "dirname", "basename"]):
            rules.append(ExecRule(path=lit(path), mode="ix", profile=child, source=NAME,
                                  why="the soffice launcher is a shell script"))
        rules += data_read(child) + _temp_rules(info, child)
    # ffmpeg: proc_open() with an argv, straight from the hat -> child "ffmpeg".
    ffmpeg = [info["ffmpeg"]] if info["ffmpeg"] else find_binaries(site, ["ffmpeg"])
    ffmpeg = [p for p in ffmpeg if site.disk(p).is_file()]
    if ffmpeg:
        child = "ffmpeg"
        for path in ffmpeg:
            rules.append(ExecRule(path=lit(path), mode="Px", target=child, source=NAME,
                                  why="video previews (proc_open without a shell)"))
        rules += _child_base(child, "ffmpeg")
        rules.append(FileRule(path="/usr/share/ffmpeg/**", perms="r", profile=child,
                              source=NAME, why="ffmpeg presets"))
        rules += data_read(child) + _temp_rules(info, child)
    # smbclient (external storage): icewind/smb runs "stdbuf -o0 smbclient ..." via the shell.
    smb = find_binaries(site, ["smbclient"])
    if smb:
        child = "smbclient"
        for path in smb + find_binaries(site, ["stdbuf"]):
            rules.append(ExecRule(path=lit(path), mode="Px", target=child, profile=SHELL,
                                  source=NAME, why="SMB external storage"))
            rules.append(ExecRule(path=lit(path), mode="ix", profile=child, source=NAME,
                                  why="stdbuf starts smbclient"))
        rules += _child_base(child, "smbclient")
        rules += [
            IncludeRule(name="abstractions/nameservice", profile=child, source=NAME,
                        why="resolve the SMB server"),
            IncludeRule(name="abstractions/kerberosclient", profile=child, source=NAME,
                        why="Kerberos logins"),
            NetworkRule(domain="inet", type="stream", profile=child, source=NAME, why="SMB"),
            NetworkRule(domain="inet6", type="stream", profile=child, source=NAME, why="SMB"),
            NetworkRule(domain="inet", type="dgram", profile=child, source=NAME, why="DNS"),
            NetworkRule(domain="inet6", type="dgram", profile=child, source=NAME, why="DNS"),
            FileRule(path="/etc/samba/**", perms="r", profile=child, source=NAME, why="smb.conf"),
            FileRule(path="/usr/lib/x86_64-linux-gnu/samba/**", perms="mr", profile=child,
                     source=NAME, why="Samba libraries"),
            FileRule(path="/usr/lib/x86_64-linux-gnu/libstdbuf.so", perms="mr", profile=child,
                     source=NAME, why="stdbuf preloads it"),
            FileRule(path="/usr/libexec/coreutils/libstdbuf.so", perms="mr", profile=child,
                     source=NAME, why="stdbuf preloads it"),
        ]
        rules += _temp_rules(info, child)
    if rules:
        # Nextcloud's own sh -c calls find nothing else; `which` helps the binary finders.
        for path in find_binaries(site, ["which.debianutils"]):
            rules.append(ExecRule(path=lit(path), mode="ix", profile=SHELL, source=NAME,
                                  why="looking up helper binaries"))
    return rules


@hookimpl
def php_fpm_apparmor_exceptions(site, app):
    if app.name != NAME:
        return []
    info = app.info
    out = []
    if info["data"]:
        out.append(WriteException(under(info["data"], "/**"),
                                  "users store files of any name (notes.php included) and "
                                  "Nextcloud writes data/.htaccess; the data directory is never "
                                  "served as code and belongs outside the web root", NAME))
    if info["tempdirectory"]:
        out.append(WriteException(under(info["tempdirectory"], "/**"),
                                  "uploads are assembled here under their own names; a temp "
                                  "directory outside any web root", NAME))
    children = sorted({r.profile for r in _helpers(site, app)} - {"hat", SHELL})
    if children:
        t = info["temp"]
        for suffix in ("/oc_tmp_*", "/oc_tmp_*/", "/oc_tmp_*/**"):
            out.append(WriteException(under(t, suffix),
                                      f"helpers ({', '.join(children)}) write temp files under "
                                      "names Nextcloud chooses (oc_tmp_*), outside any web root",
                                      NAME))
    if site.flag("code_writes"):
        for path, writable in info["apps"]:
            if writable:
                out.append(WriteException(under(path, "/**"),
                                          "the app store installs and updates apps (PHP) here",
                                          NAME))
    if site.flag("config_writes"):
        cfg = info["config_dir"]
        out += [WriteException(lit(cfg + "/config.php"),
                               "setup, the updater and settings changes rewrite config.php", NAME),
                WriteException(lit(app.root + "/.htaccess"),
                               "setup writes its rewrite rules (Apache)", NAME),
                WriteException(lit(app.root + "/.user.ini"),
                               "setup writes upload limits for PHP", NAME)]
    return out


@hookimpl
def php_fpm_apparmor_check(site, app):
    if app.name != NAME:
        return []
    info = app.info
    out = list(info["problems"])
    if info["data"] and any(is_within(info["data"], r) for r in site.roots):
        out.append(f"{info['data']}: the data directory is inside the web root: move it out "
                   "(occ can't do it for you: see Nextcloud's admin manual) so no uploaded .php "
                   "can ever be requested")
    if not site.flag("config_writes") and not info["read_only"]:
        out.append(f"{info['config_dir']}/config.php: config_writes is off for this pool: add "
                   "'config_is_read_only' => true so Nextcloud does not try to save settings "
                   "it cannot")
    if not site.flag("code_writes") and info["appstore"]:
        out.append(f"{info['config_dir']}/config.php: app store installs are refused while "
                   "code_writes is off: add 'appstoreenabled' => false and update apps with occ")
    env = getattr(site.pool, "env", None)
    if isinstance(env, dict) and not env.get("PATH"):
        out.append(f"pool {getattr(site.pool, 'name', '?')}: no env[PATH]: Nextcloud cannot find "
                   "its helpers; add env[PATH] = /usr/local/bin:/usr/bin:/bin")
    return out


EXPECTATIONS = [
    Expectation("read", "{root}/version.php", "allow", "run its own code"),
    Expectation("read", "{root}/config/config.php", "allow", "read its configuration"),
    Expectation("write", "{data}/alice/files/Documents/report.odt", "allow", "store a user file"),
    Expectation("write", "{data}/alice/files/notes.php", "allow",
                "users may store any file name: the data dir is not served"),
    Expectation("write", "{data}/appdata_oc1234/preview/1/2/3/64-64.png", "allow",
                "store a preview"),
    Expectation("write", "{data}/nextcloud.log", "allow", "write its log"),
    Expectation("write", "{root}/config/config.php", "deny",
                "config_writes is off by default"),
    Expectation("write", "{root}/index.php", "deny", "backdoor a core file"),
    Expectation("write", "{root}/apps/files/appinfo/app.php", "deny", "backdoor an app"),
    Expectation("write", "{root}/custom_apps/evil/appinfo/app.php", "deny",
                "install an app without code_writes"),
    Expectation("write", "{root}/.user.ini", "deny", "auto_prepend a shell"),
    Expectation("write", "{root}/.htaccess", "deny", "rewrite rules"),
    Expectation("read", "{other}/wp-config.php", "deny", "read another site's secrets"),
    Expectation("read", "/etc/shadow", "deny", "read system secrets"),
    Expectation("exec", "/bin/bash", "deny", "run a shell outside the child profile",
                ("/bin/bash", "-c", "id")),
    Expectation("exec", "{data}/alice/files/miner", "deny", "run an uploaded binary",
                ("{data}/alice/files/miner",)),
]

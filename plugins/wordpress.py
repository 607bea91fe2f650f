"""WordPress: uploads and fonts writes; code writes (updates, installs) off by default.

What WordPress writes, from its own source (wp-includes/functions.php wp_upload_dir() and
wp_get_mime_types(), wp-admin/includes/file.php, class-wp-upgrader.php, l10n):
- uploads: WP_CONTENT_DIR/uploads, or ABSPATH.UPLOADS; multisite adds uploads/sites/N/,
  old multisites wp-content/blogs.dir/N/files/. Only the extensions WordPress accepts for
  upload (any letter case) are writable, so uploads/shell.php stays impossible.
- fonts (6.5+): WP_CONTENT_DIR/fonts.
- wp-content/cache/ is not WordPress's: cache plugins declare their own files there
  (see wp_super_cache.py), everything else stays read-only.
- updates and installs: wp-content/upgrade/ (unpacking), upgrade-temp-backup/ (rollback
  copies), plugins/, themes/, languages/ (.po/.mo/.json and, since 6.5, .l10n.php which
  is PHP), and ABSPATH/.maintenance (included as PHP). All of that is code, so it is off
  unless the pool's `code_writes` setting is on, and the site should then say
  DISALLOW_FILE_MODS so its dashboard does not offer what the hat refuses.
- `.htaccess` (permalinks, Apache only) and wp-config.php (setup) with `config_writes`.
Mail goes through /bin/sh -> sendmail, which the core already confines.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

from php_fpm_apparmor.api import (UNKNOWN, App, clean_version, DataDir, Expectation, ext_glob, FileRule,
                                  hookimpl, is_within, lit, named_path, open_regular, pool_names, read_php,
                                  under, WriteException)

__version__ = "1.0"
NAME = "wordpress"
MARKER = "wp-includes/version.php"
# WordPress in a subdirectory of the docroot is common (example.com/wordpress/): these
# fixed places are checked, nothing is searched.
SUBDIRS = ("", "wordpress", "wp")

# wp_get_mime_types() minus what WordPress itself refuses or reserves for unfiltered_html
# (swf, exe, htm, html, js) and java class files; plus avif/heif (WordPress 6.5+).
UPLOAD_EXTS = (
    "jpg jpeg jpe gif png bmp tiff tif webp avif heic heif ico "
    "asf asx wmv wmx wm avi divx flv mov qt mpeg mpg mpe mp4 m4v ogv webm mkv 3gp 3gpp 3g2 3gp2 "
    "txt asc c cc h srt csv tsv ics rtx css vtt dfxp "
    "mp3 m4a m4b aac ra ram wav ogg oga flac mid midi wma wax mka "
    "rtf pdf tar zip gz gzip rar 7z psd xcf "
    "doc pot pps ppt wri xla xls xlt xlw mdb mpp docx docm dotx dotm xlsx xlsm xlsb xltx xltm "
    "xlam pptx pptm ppsx ppsm potx potm ppam sldx sldm onetoc onetoc2 onetmp onepkg oxps xps "
    "odt odp ods odg odc odb odf wp wpd key numbers pages"
).split()
FONT_EXTS = ("woff", "woff2", "ttf", "otf")
LANG_EXTS = ("po", "mo", "json")


# Other subdirectories (example.com/blog/) are looked at one level deep, at most this
# many: one directory listing and a stat each, never a walk.
MAX_SUBDIRS = 64


def _candidates(site, site_root: str):
    yield from SUBDIRS
    try:
        with os.scandir(site.disk(site_root)) as it:
            names = sorted(e.name for e in it if e.is_dir(follow_symlinks=False)
                           and not e.name.startswith(".") and e.name not in SUBDIRS)
    except OSError:
        return
    yield from names[:MAX_SUBDIRS]


# Debian's wordpress package: the code in /usr/share/wordpress (a system directory the core
# never infers as a root), wp-content in /var/lib/wordpress, the config in /etc/wordpress.
DEBIAN_ROOT = "/usr/share/wordpress"
DEBIAN_OWN = ("/var/lib/wordpress", "/etc/wordpress")


@hookimpl
def php_fpm_apparmor_roots(site):
    """/usr/share/wordpress for a pool that points there (chdir, doc_root, open_basedir)."""
    if not pool_names(site, DEBIAN_ROOT) or not site.disk(DEBIAN_ROOT, MARKER).is_file():
        return []
    return [DEBIAN_ROOT] + [r for r in site.roots if not any(is_within(r, d) for d in DEBIAN_OWN)]


@hookimpl
def php_fpm_apparmor_detect(site):  # no `found`: asked once per site (WordPress waits for no app)
    apps = []
    for site_root in site.roots:
        # one stat per candidate, by name: a Path built for each of a site's 64 subdirectories
        # cost more than the stats themselves (a thousand sites without WordPress)
        disk_root = os.fspath(site.disk(site_root))
        for sub in _candidates(site, site_root):
            if not os.path.isfile(os.path.join(disk_root, sub, MARKER)):
                continue
            root = posixpath.join(site_root, sub) if sub else site_root
            facts = read_php(site.disk(root, MARKER), posixpath.join(root, MARKER))
            apps.append(App(NAME, root, version=clean_version(facts.assigns.get("$wp_version")),
                            plugin=NAME, info=_layout(site, root)))
            break
    return apps


def _layout(site, root: str) -> dict:
    """Where this WordPress keeps its config, content and uploads (wp-settings.php logic)."""
    abspath = root.rstrip("/") + "/"
    problems: list[str] = []
    config = posixpath.join(root, "wp-config.php")
    if not site.disk(config).is_file():
        # wp-load.php: wp-config.php one level up, unless that is another WordPress's root.
        parent = posixpath.dirname(root.rstrip("/"))
        up = posixpath.join(parent, "wp-config.php")
        config = None
        if site.disk(up).is_file() and not site.disk(parent, "wp-settings.php").is_file():
            # Whoever controls the root chose to have no config of its own: a customer's
            # site beside the admin's (/var/www/{html,cust}) would read the admin's. Taken
            # when the root's tellers own it, or when no other WordPress there loads it
            # too (a site's own hardening: its config moved out of the docroot).
            config = up
            writes = site.flag("config_writes")
            if named_path(site, up, root, write=writes)[1]:
                others = _loading(site, parent, root)
                if others:
                    whose = f"is also that of {others[0]}" if others[0] else \
                        f"may be another's (more than {MAX_SUBDIRS} directories beside {root})"
                    problems.append(f"{up}: the wp-config.php one level above {root} {whose}: not opened to "
                                    f"this pool (if it is this site's, add {'write' if writes else 'read'} = "
                                    f"{up} to the pool's section)")
                    config = None
    facts = read_php(site.disk(config), config, abspath=abspath) if config else None
    if facts:
        problems += facts.problems

    def const(name, default=None):
        if not facts or name not in facts.defines:
            return default
        value = facts.defines[name]
        if value is UNKNOWN:
            problems.append(f"{facts.where(name)}: {name} is computed at run time; "
                            f"php-fpm-apparmor assumes {default!r}: set it to a literal")
            return default
        return value

    def resolved(path: str, told_by=None, write=True):
        """(canonical path, None), or (None, why) when that leaves the site for a place this
        pool may not have: wp-config.php and the site's symlinks are the site user's word."""
        canon, why = named_path(site, path, told_by, write=write)
        return (None, f"{canon}, {why}" if canon else why) if why else (canon, None)

    def default_dir(default: str, write=True) -> str:
        canon, why = resolved(default, write=write)
        if canon is None:  # the name itself then: AppArmor resolves it, nothing beyond is granted
            problems.append(f"{default} leads to {why}: not opened to PHP")
            return default
        return canon

    def directory(name, value, default, write=True):
        """A directory from wp-config.php, canonical, or the default when it is unsafe.
        write: PHP writes there (uploads, fonts; code only with code_writes)."""
        if value == default:
            return default_dir(default, write)
        if not isinstance(value, str):
            problems.append(f"{facts.where(name)}: {name} is not a string path; using {default}")
            return default_dir(default, write)
        canon, why = resolved(value.rstrip("/"), facts, write)
        if canon is None:
            problems.append(f"{facts.where(name)}: {name} {value!r} leads to {why}: ignored, using {default}")
            return default_dir(default, write)
        return canon

    content = directory("WP_CONTENT_DIR", const("WP_CONTENT_DIR", root + "/wp-content"),
                        root + "/wp-content")
    uploads_rel = const("UPLOADS")
    if isinstance(uploads_rel, str) and uploads_rel:
        uploads = directory("UPLOADS", abspath + uploads_rel.strip("/"), content + "/uploads")
    else:
        uploads = default_dir(content + "/uploads")
    code = site.flag("code_writes")
    plugins = directory("WP_PLUGIN_DIR", const("WP_PLUGIN_DIR", content + "/plugins"),
                        content + "/plugins", code)
    # WP_LANG_DIR default (wp_set_lang_dir): wp-content/languages if it exists, else
    # wp-includes/languages.
    lang_default = content + "/languages"
    if not site.disk(lang_default).is_dir() and site.disk(root, "wp-includes/languages").is_dir():
        lang_default = root + "/wp-includes/languages"
    languages = directory("WP_LANG_DIR", const("WP_LANG_DIR", lang_default), lang_default, code)
    debug_log = const("WP_DEBUG_LOG", False)
    if debug_log is True or debug_log in ("1", 1):
        debug_log = content + "/debug.log"
    elif isinstance(debug_log, str) and debug_log.startswith("/"):
        # judged where it leads: a debug.log linked to another user's file is not a log
        named, (debug_log, why) = debug_log, resolved(debug_log, facts)
        if debug_log is not None and not debug_log.endswith(".log"):
            debug_log, why = None, f"{debug_log}, not a .log file"
        if why:
            problems.append(f"{facts.where('WP_DEBUG_LOG')}: WP_DEBUG_LOG {named!r} leads to {why}: "
                            f"not writable")
    else:
        debug_log = None
    multisite = bool(const("MULTISITE", False))
    mods = const("DISALLOW_FILE_MODS", False)
    host_configs = []
    # Debian's wordpress package keeps the real config in /etc/wordpress/config-<host>.php.
    # Only the package's own code (root's files) is taken at its word: a site user's
    # wp-config.php naming that path, or linked to the package's, must not open every
    # packaged site's database password to that pool.
    debian_config = root == DEBIAN_ROOT and bool(config) and b"/etc/wordpress/config-" in _head(site, config)
    if debian_config:
        # Debian's wordpress package: the admin's settings live in the per-host files.
        host_configs = sorted(str(p) for p in site.disk("/etc/wordpress").glob("config-*.php"))
        for disk_path in host_configs:
            system_path = "/" + os.path.relpath(disk_path, site.sysroot)
            host = read_php(Path(disk_path), system_path, abspath=abspath)
            if host.defines.get("DISALLOW_FILE_MODS") in (True, 1, "1"):
                mods = True
    return {
        "abspath": abspath,
        "config": config,
        "content": content,
        "uploads": uploads,
        "plugins": plugins,
        "themes": content + "/themes",
        "languages": languages,
        "debug_log": debug_log,
        "multisite": multisite,
        "blogs_dir": multisite and site.disk(content, "blogs.dir").is_dir(),
        "disallow_file_mods": mods is True or mods == 1 or mods == "1",
        # WP_CACHE: cache plugins (WP Super Cache) serve pages only with it on
        "wp_cache": bool(facts) and facts.defines.get("WP_CACHE") in (True, 1, "1", "true"),
        "debian_config": debian_config,
        "problems": problems,
    }


def _loading(site, parent: str, root: str) -> list[str | None]:
    """The other WordPress roots in `parent` without a wp-config.php: they load the one in
    `parent` too. More than MAX_SUBDIRS directories there: [None], nobody can tell."""
    mine = posixpath.basename(root.rstrip("/"))
    try:
        with os.scandir(site.disk(parent)) as it:
            names = sorted(e.name for e in it if e.is_dir(follow_symlinks=False) and e.name != mine)
    except OSError:
        return []
    if len(names) > MAX_SUBDIRS:
        return [None]
    return [posixpath.join(parent, n) for n in names
            if site.disk(parent, n, "wp-settings.php").is_file()
            and not site.disk(parent, n, "wp-config.php").exists()]


def _head(site, config: str) -> bytes:
    try:
        with open_regular(site.disk(config)) as fh:
            return fh.read(65536)
    except (OSError, ValueError):
        return b""


def _rule(path, perms, why, owner=False, profile="hat"):
    return FileRule(path=path, perms=perms, owner=owner, source=NAME, why=why, profile=profile)


def _reads_outside(site, info) -> list:
    """Read rules for the parts of this WordPress that lie outside the pool's roots."""
    rules = []
    covered = lambda p: any(is_within(p, r) for r in site.roots)  # noqa: E731
    if info["config"] and not covered(info["config"]):
        rules.append(_rule(lit(info["config"]), "r", "wp-config.php one level above ABSPATH"))
    for key, why in (("content", "WP_CONTENT_DIR outside the site root (plugins, themes, media)"),
                     ("uploads", "uploads outside the site root"),
                     ("plugins", "WP_PLUGIN_DIR outside the site root"),
                     ("languages", "WP_LANG_DIR outside the site root")):
        path = info[key]
        if not covered(path) and not (key != "content" and is_within(path, info["content"])):
            rules.append(_rule(under(path, "/"), "r", why))
            rules.append(_rule(under(path, "/**"), "r", why))
    if info["debian_config"]:
        rules.append(_rule("/etc/wordpress/config-*.php", "r",
                           "Debian's wordpress package reads its per-host config here"))
    return rules


@hookimpl
def php_fpm_apparmor_rules(site, app):
    if app.name != NAME:
        return []
    info = app.info
    content, uploads = info["content"], info["uploads"]
    rules = _reads_outside(site, info)
    media = ext_glob(UPLOAD_EXTS)
    rules += [
        _rule(under(uploads, "/"), "w", "wp_upload_dir() creates the uploads dir", owner=True),
        _rule(under(uploads, "/**/"), "w", "year/month (and multisite sites/N) upload dirs",
              owner=True),
        _rule(under(uploads, "/**." + media), "rw",
              "media uploads and their resized copies: only extensions WordPress accepts",
              owner=True),
        _rule(under(content, "/fonts/"), "w", "font library (6.5+)", owner=True),
        _rule(under(content, "/fonts/**." + ext_glob(FONT_EXTS)), "rw",
              "fonts installed from the font library (6.5+)", owner=True),
    ]
    if info["blogs_dir"]:
        rules.append(_rule(under(content, "/blogs.dir/*/files/**/"), "w",
                           "pre-3.5 multisite upload dirs", owner=True))
        rules.append(_rule(under(content, "/blogs.dir/*/files/**." + media), "rw",
                           "pre-3.5 multisite uploads (ms_files_rewriting)", owner=True))
    if info["debug_log"]:
        rules.append(_rule(lit(info["debug_log"]), "w", "WP_DEBUG_LOG", owner=True))
    if site.flag("code_writes"):
        rules += _code_write_rules(app)
    if site.flag("config_writes"):
        rules += _config_write_rules(app)
    return rules + _data_dirs(site, info)


def _data_dirs(site, info) -> list:
    """The places outside the site roots this WordPress writes: the pool's own from now on."""
    outside = [(info["content"], "WP_CONTENT_DIR outside the site root"),
               (info["uploads"], "uploads outside the site root")]
    if info["debug_log"]:
        outside.append((info["debug_log"], "WP_DEBUG_LOG"))
    if site.flag("code_writes"):
        outside += [(info[k], f"{k} outside the site root (code_writes)") for k in ("plugins", "themes", "languages")]
    if site.flag("config_writes") and info["config"]:
        outside.append((info["config"], "wp-config.php above ABSPATH (config_writes)"))
    out = []
    for path, why in outside:
        if not any(is_within(path, r) for r in site.roots) and not any(is_within(path, d.path) for d in out):
            out.append(DataDir(path=path, why=why))
    return out


def _code_write_rules(app) -> list:
    info = app.info
    content = info["content"]
    return [
        _rule(under(content, "/upgrade/"), "rw", "updates unpack packages here", owner=True),
        _rule(under(content, "/upgrade/**"), "rw", "updates unpack packages here", owner=True),
        _rule(under(content, "/upgrade-temp-backup/"), "rw", "rollback copies (6.3+)", owner=True),
        _rule(under(content, "/upgrade-temp-backup/**"), "rw", "rollback copies (6.3+)",
              owner=True),
        _rule(under(info["plugins"], "/**"), "rw", "plugin installs and updates", owner=True),
        _rule(under(info["themes"], "/**"), "rw", "theme installs and updates", owner=True),
        _rule(under(info["languages"], "/"), "w", "language packs", owner=True),
        _rule(under(info["languages"], "/**/"), "w", "language packs", owner=True),
        _rule(under(info["languages"], "/**." + ext_glob(LANG_EXTS)), "rw",
              "language packs (.po/.mo/.json)", owner=True),
        _rule(under(info["languages"], "/**.l10n.php"), "rw",
              "language packs: PHP translation files (6.5+)", owner=True),
        _rule(lit(info["abspath"] + ".maintenance"), "rw",
              "maintenance mode during updates", owner=True),
    ]


def _config_write_rules(app) -> list:
    info = app.info
    rules = [_rule(lit(info["abspath"] + ".htaccess"), "rw",
                   "permalink rewrite rules (Apache)", owner=True)]
    if info["config"]:
        rules.append(_rule(lit(info["config"]), "rw", "setup writes wp-config.php", owner=True))
    return rules


@hookimpl
def php_fpm_apparmor_exceptions(site, app):
    if app.name != NAME:
        return []
    out = []
    if site.flag("code_writes"):
        whys = {
            "/upgrade/**": "updates unpack plugin/theme/core packages (PHP) here first",
            "/upgrade-temp-backup/**": "WordPress 6.3+ keeps a copy of the old plugin/theme "
                                       "here to roll back a failed update",
        }
        for suffix, why in whys.items():
            out.append(WriteException(under(app.info["content"], suffix), why, NAME))
        out.append(WriteException(under(app.info["plugins"], "/**"),
                                  "installing and updating plugins writes their PHP code", NAME))
        out.append(WriteException(under(app.info["themes"], "/**"),
                                  "installing and updating themes writes their PHP code", NAME))
        out.append(WriteException(under(app.info["languages"], "/**.l10n.php"),
                                  "language packs ship .l10n.php translation files (6.5+)", NAME))
        out.append(WriteException(lit(app.info["abspath"] + ".maintenance"),
                                  "updates put the site in maintenance mode with this PHP file",
                                  NAME))
    if site.flag("config_writes"):
        out.append(WriteException(lit(app.info["abspath"] + ".htaccess"),
                                  "saving permalinks writes rewrite rules (Apache)", NAME))
        if app.info["config"]:
            out.append(WriteException(lit(app.info["config"]),
                                      "the setup wizard and cache plugins (WP_CACHE) edit it",
                                      NAME))
    return out


@hookimpl
def php_fpm_apparmor_check(site, app):
    if app.name != NAME:
        return []
    info = app.info
    out = list(info["problems"])
    where = info["config"] or f"{info['abspath']}wp-config.php"
    if not info["config"]:
        out.append(f"note: {app.root}: no wp-config.php found (root or one level up): the site is "
                   "not installed yet, or its config lives elsewhere")
    code = site.flag("code_writes")
    if not code and not info["disallow_file_mods"]:
        out.append(f"{where}: lacks DISALLOW_FILE_MODS while code writes are off for this pool: "
                   "dashboard updates and installs will fail; add define('DISALLOW_FILE_MODS', "
                   "true) and update with wp-cli, or set code_writes = yes")
    if code and info["disallow_file_mods"]:
        out.append(f"{where}: DISALLOW_FILE_MODS is set, so WordPress never writes code: "
                   "set code_writes = no for this pool to drop those permissions")
    if code:
        out.append(f"note: {app.root}: code_writes covers plugin, theme and language updates only; "
                   "core updates rewrite wp-admin/ and wp-includes/, which the hat never "
                   "allows: update core with wp-cli or the package manager")
    return out


# Operations WordPress must be able to do, and attacks that must fail, with default settings
# (code_writes and config_writes off). {content} is WP_CONTENT_DIR.
EXPECTATIONS = [
    Expectation("read", "{root}/wp-includes/version.php", "allow", "run its own code"),
    Expectation("read", "{root}/wp-config.php", "allow", "read its configuration"),
    Expectation("write", "{content}/uploads/2026/11/cat.jpg", "allow", "upload an image"),
    Expectation("write", "{content}/uploads/2026/11/IMG_0001.JPG", "allow",
                "upload a camera image (upper-case extension)"),
    Expectation("write", "{content}/uploads/2026/11/cat-150x150.webp", "allow",
                "store a generated image size"),
    Expectation("write", "{content}/uploads/2026/11/report.pdf", "allow", "upload a document"),
    Expectation("write", "{content}/uploads/sites/2/2026/11/cat.jpg", "allow",
                "multisite: upload to site 2"),
    Expectation("write", "{content}/fonts/inter.woff2", "allow", "install a font (6.5+)"),
    Expectation("mail", "/usr/sbin/sendmail", "allow", "send mail (password reset)"),
    Expectation("write", "{content}/uploads/shell.php", "deny", "drop a web shell in uploads"),
    Expectation("write", "{content}/uploads/2026/11/shell.phtml", "deny",
                "drop a web shell with another PHP extension"),
    Expectation("write", "{content}/uploads/2026/11/shell.PHP", "deny",
                "drop a web shell with an upper-case extension"),
    Expectation("write", "{content}/uploads/x.phar", "deny", "drop a PHP archive"),
    Expectation("write", "{content}/uploads/.htaccess", "deny", "enable PHP in uploads (Apache)"),
    Expectation("write", "{content}/uploads/.user.ini", "deny", "auto_prepend a shell"),
    Expectation("write", "{root}/index.php", "deny", "backdoor a core file"),
    Expectation("write", "{root}/wp-includes/version.php", "deny", "backdoor a core file"),
    Expectation("write", "{root}/wp-config.php", "deny", "rewrite the configuration"),
    Expectation("write", "{root}/.maintenance", "deny", "code writes are off by default"),
    Expectation("write", "{content}/plugins/evil/evil.php", "deny", "install a plugin"),
    Expectation("write", "{content}/themes/evil/functions.php", "deny", "install a theme"),
    Expectation("write", "{content}/languages/de_DE.l10n.php", "deny", "PHP translation file"),
    Expectation("write", "{content}/upgrade/evil/evil.php", "deny", "stage code for an update"),
    Expectation("write", "{content}/cache/autoptimize/css/style.css", "deny",
                "wp-content/cache belongs to cache plugins, not WordPress"),
    Expectation("read", "{other}/wp-config.php", "deny", "read another site's secrets"),
    Expectation("write", "{other}/index.php", "deny", "backdoor another site"),
    Expectation("read", "/etc/shadow", "deny", "read system secrets"),
    Expectation("exec", "/bin/bash", "deny", "run a shell outside the child profile",
                ("/bin/bash", "-c", "id")),
    Expectation("exec", "{content}/uploads/miner", "deny", "run a binary dropped in uploads",
                ("{content}/uploads/miner",)),
]

# The same site with `code_writes = yes`: updates work, uploads stay code-free.
EXPECTATIONS_CODE_WRITES = [
    Expectation("write", "{content}/upgrade/akismet/akismet.php", "allow", "unpack an update"),
    Expectation("write", "{content}/plugins/akismet/akismet.php", "allow", "update a plugin"),
    Expectation("write", "{content}/themes/twentytwentythree/functions.php", "allow",
                "update a theme"),
    Expectation("write", "{content}/languages/de_DE.l10n.php", "allow", "install a language pack"),
    Expectation("write", "{content}/languages/de_DE.mo", "allow", "install a language pack"),
    Expectation("write", "{root}/.maintenance", "allow", "maintenance mode during updates"),
    Expectation("write", "{content}/uploads/shell.php", "deny", "uploads stay code-free"),
    Expectation("write", "{root}/wp-includes/version.php", "deny", "core files stay read-only"),
]

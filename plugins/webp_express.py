"""WebP Express: converts uploads to WebP, mostly by running cwebp through /bin/sh.

Worked example for third-party plugin authors (docs/plugin-guide.md walks through it).

What it does, from its source (rosell-dk/webp-express lib/classes/Paths.php,
SelfTestHelper.php; rosell-dk/webp-convert Converters/Cwebp.php, ExecTrait.php):
- every program runs through exec(), i.e. `/bin/sh -c "..."`: `nice cwebp ... -o DEST`,
  `cwebp -version`, `which -a cwebp`, `whereis -b cwebp`, `whoami`, and the bundled
  vendor/rosell-dk/webp-convert/src/Convert/Converters/Binaries/cwebp-*; other converters
  run `convert`/`identify` (ImageMagick), `gm`, `ffmpeg`;
- PHP itself writes wp-content/webp-express/{config/*.json, log/**.md, webp-images/**.webp,
  webp-images-bigger-than-source/**.webp}, .webp next to uploads ("mingled"), and test
  images in <image root>/webp-express-test-images/;
- config/index.php and config/.htaccess (protection, CVE-2025-11379) once, when missing;
  .htaccess rewrite rules in the image roots (Apache only).

The confinement, like the blog's hand-made `myblogdash` profile: the core's /bin/sh child
("sh", shared with mail()) gets only the discovery tools, and every converter runs in
this plugin's own child "webp", which reads the site's JPEG/PNG images and writes .webp
into WebP Express's directories and nothing else.
"""

from __future__ import annotations

from php_fpm_apparmor.api import (App, ExecRule, Expectation, ext_glob, FileRule, find_binaries,
                                  hookimpl, IncludeRule, lit, plugin_header, under, WriteException)

__version__ = "1.0"
NAME = "webp-express"
HOST = "wordpress"  # the app this one plugs into
CHILD = "webp"  # our child profile: php-fpm//<hat>_webp
SHELL = "sh"  # the core's /bin/sh child, where exec() lands
BINARIES = "vendor/rosell-dk/webp-convert/src/Convert/Converters/Binaries"
SOURCE_EXTS = ("jpg", "jpeg", "png")
TEST_IMAGE_EXTS = ("jpeg", "png")  # SelfTestHelper copies very-small.jpg/test.png as .JPEG/.PNG

# Discovery: `which -a cwebp` (whereis and whoami only run when that fails, so they
# are left out: the blog's learned profile never saw them).
TOOLS = ("which.debianutils", "which")
# Where Debian installs the programs every system has (coreutils, debianutils,
# util-linux): used when the tree we generate for (--root) does not hold them.
DEBIAN_DEFAULTS = {"which": "/usr/bin/which.debianutils", "nice": "/usr/bin/nice",
                   "cwebp": "/usr/bin/cwebp"}
# Converters and what each needs besides libraries (abstractions/base covers those).
CONVERTERS = {
    "cwebp": (),
    "nice": (),
    "convert": ("/etc/ImageMagick-6/**", "/usr/share/ImageMagick-6/**",
                "/usr/lib/x86_64-linux-gnu/ImageMagick-*/**"),
    "magick": ("/etc/ImageMagick-7/**", "/usr/share/ImageMagick-7/**"),
    "identify": ("/etc/ImageMagick-6/**", "/usr/share/ImageMagick-6/**",
                 "/usr/lib/x86_64-linux-gnu/ImageMagick-*/**"),
    "gm": ("/usr/lib/GraphicsMagick-*/**", "/usr/lib/x86_64-linux-gnu/GraphicsMagick-*/**",
           "/usr/share/GraphicsMagick-*/**"),
    "ffmpeg": ("/usr/share/ffmpeg/**",),
}


@hookimpl
def php_fpm_apparmor_detect(site, found):
    apps = []
    known = {a.root for a in found if a.name == NAME}  # an earlier detection round's: not redone
    for wp in found:
        if wp.name != HOST or wp.root in known:
            continue
        plugin_dir = wp.info["plugins"] + "/webp-express"
        main = site.disk(plugin_dir, "webp-express.php")
        if not main.is_file() or plugin_header(main, "Plugin Name") is None:
            continue
        info = dict(wp.info)
        info["plugin_dir"] = plugin_dir
        info["dir"] = wp.info["content"] + "/webp-express"
        apps.append(App(NAME, wp.root, version=plugin_header(main, "Version"), plugin=NAME,
                        info=info))
    return apps


def _file(path, perms, why, profile="hat", owner=True):
    return FileRule(path=path, perms=perms, owner=owner, source=NAME, why=why, profile=profile)


def _image_roots(info) -> list[str]:
    # Paths::getImageRootIds(): uploads, themes, plugins, wp-content, index (ABSPATH).
    roots = [info["uploads"], info["themes"], info["plugins"], info["content"],
             info["abspath"].rstrip("/")]
    return list(dict.fromkeys(roots))


def _scope(info) -> list[str]:
    # The roots WebP Express converts by default ("Scope: Uploads and themes"); its self
    # test copies images into these only.
    return list(dict.fromkeys([info["uploads"], info["themes"]]))


@hookimpl
def php_fpm_apparmor_rules(site, app):
    if app.name != NAME:
        return []
    info = app.info
    d = info["dir"]
    webp = "." + ext_glob(("webp",))
    rules = [
        # In-process converters (Gd, Imagick, Vips) write from PHP, so the hat needs these too.
        _file(under(d, "/"), "w", "its content directory"),
        _file(under(d, "/config/"), "w", "settings directory"),
        _file(under(d, "/config/*.json"), "rw", "settings (config.<hash>.json, wod-options)"),
        _file(under(d, "/log/"), "w", "conversion logs"),
        _file(under(d, "/log/**/"), "w", "conversion logs"),
        _file(under(d, "/log/**.md"), "rw", "conversion logs (Markdown)"),
        _file(under(d, "/webp-images/"), "w", "converted images"),
        _file(under(d, "/webp-images/**/"), "w", "converted images"),
        _file(under(d, "/webp-images/**" + webp), "rw", "converted images"),
        _file(under(d, "/webp-images-bigger-than-source/"), "w", "markers for useless conversions"),
        _file(under(d, "/webp-images-bigger-than-source/**/"), "w",
              "markers for useless conversions"),
        _file(under(d, "/webp-images-bigger-than-source/**" + webp), "rw",
              "markers for useless conversions"),
    ]
    for root in _scope(info):
        rules.append(_file(under(root, "/webp-express-test-images/"), "w", "self test"))
        rules.append(_file(under(root, "/webp-express-test-images/*." + ext_glob(TEST_IMAGE_EXTS)),
                           "rw", "self test copies a JPEG/PNG into each image root"))
    if not site.disk(d, "config/index.php").is_file():
        rules.append(_file(lit(d + "/config/index.php"), "w",
                           "created once to protect the settings on nginx"))
    if site.flag("config_writes"):
        for path in _htaccess_paths(info):
            rules.append(_file(lit(path), "rw", "rewrite rules that serve .webp (Apache)"))
    rules += _helper_rules(site, app)
    return rules


def _htaccess_paths(info) -> list[str]:
    d = info["dir"]
    return [p + "/.htaccess" for p in _image_roots(info)] + [
        d + "/config/.htaccess", d + "/webp-images/.htaccess",
        d + "/webp-images-bigger-than-source/.htaccess", d + "/log/.htaccess"]


def _helper_rules(site, app) -> list:
    info = app.info
    rules = []
    # The shell child: exec() lands there; it may look for binaries and start converters.
    tools = find_binaries(site, TOOLS) + [DEBIAN_DEFAULTS["which"]]
    for path in dict.fromkeys(tools):
        rules.append(ExecRule(path=lit(path), mode="ix", profile=SHELL, source=NAME,
                              why="webp-convert looks for cwebp (which -a, whereis -b, whoami)"))
    converters = {name: find_binaries(site, [name]) for name in CONVERTERS}
    for name in ("cwebp", "nice"):
        # Also when absent here: the rule costs nothing, and `apt install webp` later
        # needs no regeneration.
        converters[name] = list(dict.fromkeys(converters[name] + [DEBIAN_DEFAULTS[name]]))
    bundled = under(info["plugin_dir"], "/" + BINARIES + "/cwebp-*-linux-*")
    execs = [(lit(p), name) for name, paths in converters.items() for p in paths]
    if not site.flag("code_writes"):
        # With code_writes the plugins dir is writable: nothing in it may run (a written
        # file would be run next), so the bundled binaries are left out; Debian's cwebp stays.
        execs.append((bundled, "cwebp"))
    for path, name in execs:
        rules.append(ExecRule(path=path, mode="Px", target=CHILD, profile=SHELL, source=NAME,
                              why=f"{name} converts images in the {CHILD} child"))
        # nice runs cwebp: inside the child the converters are inherited.
        rules.append(ExecRule(path=path, mode="ix", profile=CHILD, source=NAME,
                              why=f"{name} (started by nice or the shell)"))
    rules.append(IncludeRule(name="abstractions/base", profile=CHILD, source=NAME,
                             why="libraries the converters link"))
    for name, paths in converters.items():
        if paths and name != "cwebp":
            for pattern in CONVERTERS[name]:
                rules.append(FileRule(path=pattern, perms="mr" if "/lib/" in pattern else "r",
                                      profile=CHILD, source=NAME, why=f"{name} configuration"))
    # Read: only images of this site. Write: only .webp into WebP Express's places.
    src = "." + ext_glob(SOURCE_EXTS)
    webp = "." + ext_glob(("webp",))
    for root in _outermost([*site.roots, *_image_roots(info)]):
        rules.append(_file(under(root, "/**" + src), "r", "source images", profile=CHILD,
                           owner=False))
    d = info["dir"]
    for sub in ("/webp-images/**", "/webp-images-bigger-than-source/**"):
        rules.append(_file(under(d, sub + webp), "rw", "write the converted image", profile=CHILD))
    rules.append(_file(under(info["uploads"], "/**" + webp), "rw",
                       "\"mingled\" mode puts the .webp next to the upload", profile=CHILD))
    return rules


def _outermost(paths) -> list[str]:
    """The paths not inside another one of them (one glob covers the nested ones)."""
    out = []
    for p in sorted(set(paths), key=len):
        if not any(p == o or p.startswith(o.rstrip("/") + "/") for o in out):
            out.append(p)
    return out


@hookimpl
def php_fpm_apparmor_exceptions(site, app):
    if app.name != NAME:
        return []
    d = app.info["dir"]
    out = []
    if not site.disk(d, "config/index.php").is_file():
        out.append(WriteException(lit(d + "/config/index.php"),
                                  "WebP Express writes this fixed deny-all file once to keep "
                                  "its settings private on nginx (CVE-2025-11379)", NAME))
    if site.flag("config_writes"):
        for path in _htaccess_paths(app.info):
            out.append(WriteException(lit(path), "rewrite rules that serve .webp (Apache)", NAME))
    return out


@hookimpl
def php_fpm_apparmor_check(site, app):
    if app.name != NAME:
        return []
    out = []
    d = app.info["dir"]
    if not site.disk(d, "config/index.php").is_file():
        out.append(f"note: {d}/config/index.php is missing: the pool may write it once; open WebP "
                   "Express's settings page, then regenerate to drop that exception")
    if site.flag("code_writes"):
        out.append("note: code_writes is on, so the bundled cwebp binaries of WebP Express (in the "
                   "writable plugins dir) may not run: `apt install webp` for Debian's cwebp")
    if not find_binaries(site, ["cwebp"]):
        out.append("note: cwebp is not installed: WebP Express falls back to its bundled binaries "
                   "or slower converters; `apt install webp` and regenerate")
    return out


# With the "sh" chain the static check follows /bin/sh -> the program in the command.
EXPECTATIONS = [
    Expectation("exec", "/bin/sh", "allow", "run cwebp the way webp-convert does",
                ("/bin/sh", "-c", "cwebp -version")),
    Expectation("exec", "/bin/sh", "allow", "run cwebp at low priority",
                ("/bin/sh", "-c", "nice cwebp -version")),
    Expectation("write", "{content}/webp-express/webp-images/doc-root/wp-content/uploads/2026/11/"
                "cat.jpg.webp", "allow", "store a converted image"),
    Expectation("write", "{content}/webp-express/config/config.a1b2c3.json", "allow",
                "save its settings"),
    Expectation("write", "{content}/webp-express/log/conversions/doc-root/wp-content/uploads/"
                "cat.jpg.md", "allow", "log a conversion"),
    Expectation("write", "{content}/uploads/2026/11/cat.jpg.webp", "allow",
                "\"mingled\" mode: .webp next to the upload"),
    Expectation("write", "{content}/uploads/webp-express-test-images/Ab12Cd.PNG", "allow",
                "self test copies a test image"),
    Expectation("write", "{content}/themes/webp-express-test-images/Ab12Cd.JPEG", "allow",
                "self test copies a test image"),
    Expectation("write", "{content}/webp-express/webp-images-bigger-than-source/uploads/"
                "cat.jpg.webp", "allow", "mark a conversion that came out bigger"),
    Expectation("write", "{content}/webp-express/webp-images/shell.php", "deny",
                "drop PHP into its cache"),
    Expectation("write", "{content}/webp-express/config/evil.php", "deny",
                "drop PHP into its settings dir"),
    Expectation("exec", "/bin/sh", "allow", "run the cwebp binary bundled with webp-convert",
                ("/bin/sh", "-c", "{content}/plugins/webp-express/vendor/rosell-dk/webp-convert/"
                 "src/Convert/Converters/Binaries/cwebp-120-linux-x86-64 -version")),
    Expectation("exec", "/bin/sh", "deny", "a shell command must not reach bash",
                ("/bin/sh", "-c", "/bin/bash -c id")),
    Expectation("exec", "/bin/sh", "deny", "a binary dropped in uploads must not run",
                ("/bin/sh", "-c", "{content}/uploads/cwebp -version")),
]

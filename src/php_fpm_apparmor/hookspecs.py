"""The hooks an app plugin implements: signatures, arguments, and what each must return.

Import everything a plugin needs from `php_fpm_apparmor.api` (the one public module);
docs/plugin-guide.md documents each hook with an example. A plugin is a module (or class)
with functions named like the hooks below, marked with ``@hookimpl``, registered in the
``php_fpm_apparmor`` entry-point group or dropped as a ``.py`` file into
/etc/php-fpm-apparmor/plugins.d/:

    # setup.cfg of your package
    [options.entry_points]
    php_fpm_apparmor =
        myshop = myshop_apparmor

    # myshop_apparmor.py
    from php_fpm_apparmor.api import App, FileRule, hookimpl, under

    @hookimpl
    def php_fpm_apparmor_detect(site, found):
        for root in site.roots:                      # canonical paths, never walk the tree
            if site.disk(root, "shop/version.php").is_file():
                return [App("myshop", root)]
        return []

    @hookimpl
    def php_fpm_apparmor_rules(site, app):
        if app.name != "myshop":
            return []
        return [FileRule(path=under(app.root, "/var/cache/**"), perms="rw",
                         owner=True, why="compiled templates (HTML)")]

The data flows one way: pools -> sites (roots) -> apps (detect) -> policy (rules,
exceptions) -> render -> validate -> install. Hooks get plain dataclasses and return lists
of plain data; they never write files or call apparmor_parser.

The boundary is strict: a hook that raises or returns anything but what its docstring
says makes that pool fail (its previous hat stays), with one line naming the plugin, the
hook and the bad value; the other pools are not affected. A misspelled hook name or a
missing ``@hookimpl`` refuses the whole plugin at load time (`php-fpm-apparmor plugins`
exits 1 and names it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

from . import PROJECT

if TYPE_CHECKING:  # types for readers and type checkers; no import cycle at run time
    from .apps import App
    from .policy import Rule, WriteException
    from .sites import Site

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def php_fpm_apparmor_roots(site: Site) -> list[str]:
    """Return the site roots of an app you know for this pool (absolute paths), or [].

    For apps a distribution installs outside the usual web roots: Debian's phpMyAdmin lives
    in /usr/share/phpmyadmin, which the core never takes as a root by itself (it is a system
    directory). `site.roots` holds what the core inferred (from chdir, doc_root,
    open_basedir; possibly empty) and `site.origin` says from where. Roots set by the admin
    (``root =`` in the tool's config) always win: this hook is not called for them.
    Claim only what you recognise from marker files (``site.disk(path)``), for example
    ``site.pool.chdir == "/usr/share/phpmyadmin"`` and its ``libraries/`` present.
    Every claimed root is canonicalised and refused if it is / or a system directory.
    """


@hookspec
def php_fpm_apparmor_detect(site: Site, found: list[App]) -> list[App]:
    """Return the `App`s of yours found in `site` (a list, possibly empty).

    `found` holds apps other plugins found so far (detection repeats until nothing new
    appears, so a WordPress add-on can wait for WordPress). Take it only if you wait for
    another app: an implementation without it (``def php_fpm_apparmor_detect(site)``) is
    asked once per site, one with it again every round. Look only at known marker
    files: a site may hold 100,000 files and detection must take milliseconds.
    Anything else than a list of `App` (with a non-empty name and an absolute root) is
    that pool's failure.
    """


@hookspec
def php_fpm_apparmor_rules(site: Site, app: App) -> list[Rule]:
    """Return the rules (`FileRule`, `ExecRule`, ...) `app` needs in `site`'s pool.

    Called once per detected app, for every plugin: return [] for apps that are not
    yours. A rule's ``profile`` is "hat" (the pool's worker), "master" (php-fpm itself)
    or a helper name whose child profile is created for you. Give each rule a ``why``.
    Anything that is not a rule object of `php_fpm_apparmor.api` is that pool's failure.
    """


@hookspec
def php_fpm_apparmor_exceptions(site: Site, app: App) -> list[WriteException]:
    """Return `WriteException`s: exact rule paths allowed to write PHP-like files.

    Each names one rule path returned by your `php_fpm_apparmor_rules` and why the app
    cannot work without it. Keep them rare; admins see every one in `status`.
    """


@hookspec
def php_fpm_apparmor_check(site: Site, app: App) -> list[str]:
    """Return findings (one-line strings with a fix hint) for `check`.

    Example: "wp-config.php lacks DISALLOW_FILE_MODS while code writes are off:
    add define('DISALLOW_FILE_MODS', true)". A string starting with "note: " is
    informational and never makes `check` fail. A hook that raises is a finding itself.
    """

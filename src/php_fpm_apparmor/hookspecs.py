"""The plugin API: everything a third-party app plugin needs to know is in this file.

An app plugin teaches php-fpm-apparmor what one web application (WordPress, Nextcloud,
your shop) needs, so every pool serving it gets a least-privilege hat with no
aa-logprof sessions. It is a module (or object) with functions named like the hooks
below, marked with ``hookimpl``, registered in the ``php_fpm_apparmor`` entry-point group:

    # setup.cfg of your package
    [options.entry_points]
    php_fpm_apparmor =
        myshop = myshop_apparmor

    # myshop_apparmor.py
    from php_fpm_apparmor.hookspecs import hookimpl
    from php_fpm_apparmor.apps import App
    from php_fpm_apparmor.policy import FileRule, under

    @hookimpl
    def php_fpm_apparmor_detect(site, found):
        for root in site.roots:                      # canonical paths, never walk the tree
            if site.disk(root, "shop/version.php").is_file():
                return [App("myshop", root, version=None, plugin="myshop")]

    @hookimpl
    def php_fpm_apparmor_rules(site, app):
        if app.name != "myshop":
            return []
        return [FileRule(path=under(app.root, "/var/cache/**"), perms="rw",
                         owner=True, source="myshop", why="compiled templates (HTML)")]

The data flows one way: pools -> sites -> apps (detect) -> policy (rules, exceptions)
-> render -> validate -> install. Hooks get plain dataclasses and return plain data;
they never write files or call apparmor_parser. Worked example: plugins/webp_express.py.

Rules of the road (the generator enforces them and refuses the whole pool otherwise):
- Build every path from `policy.lit()` / `policy.under()`: a site path may hold spaces,
  quotes or glob characters and must still match only itself. The glob part you append
  is your own code, so keep it as narrow as the app allows.
- A pool may not write code names (``policy.CODE_EXTENSIONS``/``CODE_FILES``: .php,
  .php7, .phtml, .phar, .inc, .htaccess, .user.ini, ... in any letter case). If your app
  truly must, return a `WriteException` from `php_fpm_apparmor_exceptions` naming the
  exact rule path and why. It writes only in the pool's own paths: declare a directory
  it writes outside the site roots with ``policy.DataDir`` among your rules.
  The whole closed list: docs/invariants.md; test with ``invariants.check()``.
- Programs you let the app run go into a child profile (`ExecRule(mode="Px",
  target="sh")` plus rules with ``profile="sh"``), never unconfined; ``ux`` is refused.
- Per-pool switches come from ``site.settings`` (the pool's section of
  /etc/php-fpm-apparmor/php-fpm-apparmor.conf), e.g. ``site.flag("code_writes")``.
- A plugin that raises is reported and skipped; the other plugins still run.
"""

import pluggy

from . import PROJECT

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def php_fpm_apparmor_detect(site, found):
    """Return the `App`s of yours found in `site` (a list, possibly empty).

    `found` holds apps other plugins found so far (detection repeats until nothing new
    appears, so a WordPress add-on can wait for WordPress). Look only at known marker
    files: a site may hold 100,000 files and detection must take milliseconds.
    """


@hookspec
def php_fpm_apparmor_rules(site, app):
    """Return the rules (`policy.FileRule`, `ExecRule`, ...) `app` needs in `site`'s pool.

    Called once per detected app, for every plugin: return [] for apps that are not
    yours. A rule's ``profile`` is "hat" (the pool's worker), "master" (php-fpm itself)
    or a helper name whose child profile is created for you. Give each rule a ``why``.
    """


@hookspec
def php_fpm_apparmor_exceptions(site, app):
    """Return `policy.WriteException`s: exact rule paths allowed to write PHP-like files.

    Each names one rule path returned by your `php_fpm_apparmor_rules` and why the app
    cannot work without it. Keep them rare; admins see every one in `status`.
    """


@hookspec
def php_fpm_apparmor_check(site, app):
    """Return findings (one-line strings with a fix hint) for `status` and `check`.

    Example: "wp-config.php lacks DISALLOW_FILE_MODS while code writes are off:
    add define('DISALLOW_FILE_MODS', true)".
    """

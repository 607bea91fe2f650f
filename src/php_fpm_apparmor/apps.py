"""Step 3: find the web applications each site serves, by asking the app plugins."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .errors import PluginError


@dataclass
class App:
    name: str  # plugin-defined id, e.g. "wordpress"
    root: str  # canonical system path the app lives in
    version: str | None = None
    plugin: str = ""  # the plugin that detected it: set by the loader, whatever the plugin says
    info: dict = field(default_factory=dict)  # plugin facts (wp-config path, datadirectory...)


# Detection repeats while plugins keep finding new apps (add-ons wait for their host app);
# the bound stops a plugin that invents a new app every round. Only the plugins whose
# detect takes `found` are asked again: the others' answer cannot have changed (on a
# thousand sites, asking WordPress, Nextcloud and phpMyAdmin again was a quarter of the
# detection's file lookups).
MAX_ROUNDS = 4


def detect(site, plugins, notes: list | None = None) -> list[App]:
    """The apps the plugins find in the site. `notes` gets one line per app that two
    plugins both claimed at one root (the first plugin's is used)."""
    found: list[App] = []
    seen: dict = {}  # (name, root) -> the plugin whose App is kept
    for round_ in range(MAX_ROUNDS):
        new = []
        for plugin, app in plugins.call("php_fpm_apparmor_detect", with_names=True, site=site,
                                        found=list(found), needs="found" if round_ else None):
            check_app(plugin, app)
            if not any(_inside(app.root, r) for r in site.roots):
                from .plugins import short
                raise PluginError(plugin, "php_fpm_apparmor_detect",
                                  f"returned App {short(app.name)} at {short(app.root)}, outside the pool's site "
                                  f"roots ({', '.join(site.roots)}): claim the directory in php_fpm_apparmor_roots")
            if app.plugin != plugin:  # provenance is who really returned it, as for rules
                app = replace(app, plugin=plugin)
            key = (app.name, app.root)
            if key not in seen:
                seen[key] = plugin
                new.append(app)
            elif seen[key] != plugin and notes is not None:  # the same plugin again: a later round
                line = (f"pool {site.pool.name}: plugins {seen[key]} and {plugin} both detected {app.name} at "
                        f"{app.root}; {seen[key]}'s is used")
                if line not in notes:
                    notes.append(line)
        if not new:
            break
        found.extend(new)
    return sorted(found, key=lambda a: (a.root, a.name))


def _inside(path: str, root: str) -> bool:
    return path.rstrip("/") == root.rstrip("/") or path.startswith(root.rstrip("/") + "/")


def claimed_roots(site, plugins) -> tuple[list[str], list[str]]:
    """(roots the plugins claim for this pool, the plugins that claimed them)."""
    roots, by = [], []
    for plugin, root in plugins.call("php_fpm_apparmor_roots", with_names=True, site=site):
        if not isinstance(root, str) or not root.startswith("/"):
            from .plugins import short
            raise PluginError(plugin, "php_fpm_apparmor_roots", f"returned {short(root)}, not an absolute path")
        if root not in roots:
            roots.append(root)
        if plugin not in by:
            by.append(plugin)
    return roots, by


def new_claims(before, after, by) -> list[tuple[str, str]]:
    """(root, plugins) for each root the plugins claimed that the pool did not have and its
    own configuration does not name (chdir, doc_root, an open_basedir entry)."""
    from .apphelpers import pool_names

    return [(r, ", ".join(by)) for r in after.roots if r not in before.roots and not pool_names(before, r)]


def refuse_foreign_claims(entries) -> None:
    """A plugin may claim a packaged app's directory for the pools that name it, never
    another pool's root (or a directory holding one, or inside one): that would hand one
    pool's files to another. That pool fails, the plugin named; the other pool is kept."""
    from .sites import inside

    roots = [(r, e) for e in entries if e.site is not None for r in e.site.roots]
    for e in entries:
        for root, by in getattr(e, "claims", ()):
            hit = next(((r, o) for r, o in roots if o is not e and (inside(root, r) or inside(r, root))), None)
            if hit and not e.problem:
                e.problem = (f"{e.pool.config_file}: pool {e.pool.name}: plugin {by}: php_fpm_apparmor_roots: "
                             f"claimed {root}, which reaches pool {hit[1].pool.name}'s root {hit[0]} and is not "
                             f"named by this pool (chdir, doc_root, open_basedir)")


def check_app(plugin: str, app) -> None:
    """An App with a name and an absolute root, or that pool fails with the plugin named."""
    from .plugins import short

    hook = "php_fpm_apparmor_detect"
    if not isinstance(app, App):
        raise PluginError(plugin, hook, f"returned {short(app)} ({type(app).__name__}), not an App")
    if not isinstance(app.name, str) or not app.name or not app.name.isprintable() or len(app.name) > 64:
        raise PluginError(plugin, hook, f"returned an App whose name is {short(app.name)}, not a non-empty "
                                        f"printable string (64 characters at most)")
    if not isinstance(app.root, str) or not app.root.startswith("/"):
        raise PluginError(plugin, hook, f"returned App {short(app.name)} whose root is {short(app.root)}, "
                                        f"not an absolute path")
    if app.version is not None and not isinstance(app.version, str):
        raise PluginError(plugin, hook, f"returned App {short(app.name)} whose version is {short(app.version)}, "
                                        f"not a string or None")
    if not isinstance(app.info, dict):
        raise PluginError(plugin, hook, f"returned App {short(app.name)} whose info is {short(app.info)}, not a dict")

"""Loading app plugins: first-party and third-party alike, through one entry-point group.

A plugin that fails to import, or raises inside a hook, is reported and skipped: one
broken third-party package must not stop every other pool from being confined.
Set PHP_FPM_APPARMOR_NO_EXTERNAL_PLUGINS=1 to load only the first-party plugins.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from importlib import metadata

import pluggy

from . import PROJECT, hookspecs

FIRST_PARTY = "php_fpm_apparmor_plugins"
NO_EXTERNAL_ENV = "PHP_FPM_APPARMOR_NO_EXTERNAL_PLUGINS"


@dataclass
class PluginInfo:
    name: str
    version: str
    source: str  # "first-party" or the distribution that ships it
    module: str


@dataclass
class Plugins:
    pm: pluggy.PluginManager
    info: list[PluginInfo] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def call(self, hook: str, with_names: bool = False, **kwargs) -> list:
        """Call every implementation of `hook`; flatten their lists; skip ones that raise.

        With `with_names`, items come as (plugin name, item) so provenance cannot be faked.
        """
        out = []
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            try:
                result = impl.function(*[kwargs[a] for a in impl.argnames])
            except Exception as exc:  # a third party's bug must not stop the run
                self.problems.append(f"plugin {impl.plugin_name}: {hook} failed: {exc!r}; skipped")
                continue
            if result is None:
                continue
            if not isinstance(result, (list, tuple)):
                result = [result]
            out.extend((impl.plugin_name, item) if with_names else item for item in result)
        return out


def _external_disabled() -> bool:
    return os.environ.get(NO_EXTERNAL_ENV, "").strip().lower() in ("1", "yes", "true", "on")


def load(entry_points=None, extra=()) -> Plugins:
    """Build the plugin manager from the entry-point group (plus `extra` modules, for tests)."""
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    plugins = Plugins(pm)
    if entry_points is None:
        entry_points = metadata.entry_points(group=PROJECT)
    for ep in sorted(entry_points, key=lambda e: e.name):
        first_party = ep.value.startswith(FIRST_PARTY + ".")
        if not first_party and _external_disabled():
            continue
        try:
            module = ep.load()
            pm.register(module, name=ep.name)
        except Exception as exc:
            plugins.problems.append(f"plugin {ep.name} ({ep.value}) failed to load: {exc!r}; skipped")
            continue
        dist = getattr(ep, "dist", None)
        plugins.info.append(PluginInfo(
            name=ep.name,
            version=getattr(module, "__version__", None) or (dist.version if dist else "?"),
            source="first-party" if first_party else (dist.name if dist else "external"),
            module=ep.value,
        ))
    for module in extra:
        name = getattr(module, "__name__", repr(module)).rsplit(".", 1)[-1]
        pm.register(module, name=name)
        plugins.info.append(PluginInfo(name, getattr(module, "__version__", "?"), "extra", name))
    return plugins


def report(plugins: Plugins, stream=sys.stderr) -> None:
    for line in plugins.problems:
        print(f"php-fpm-apparmor: warning: {line}", file=stream)

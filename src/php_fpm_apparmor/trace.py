"""Which plugin answered what for one pool: `php-fpm-apparmor plugins --trace POOL`.

The plugin manager records every hook call while tracing (Plugins.trace); this module
runs the pipeline for the system and prints the calls made for the pools asked about,
each item as the generator uses it (rules as the AppArmor text they render to).
"""

from __future__ import annotations

from . import generate, render
from .apps import App
from .plugins import one_line
from .policy import Rule, WriteException


def _item(item, policy) -> str:
    if isinstance(item, Rule):
        try:
            text = render.rule_text(item, policy)
        except (TypeError, ValueError, AttributeError) as exc:
            text = f"(cannot render: {exc})"
        where = item.profile
        return f"{where}: {text}" + (f"  # {item.why}" if item.why else "")
    if isinstance(item, App):
        return f"{item.name} {item.version or ''} at {item.root}".replace("  ", " ")
    if isinstance(item, WriteException):
        return f"exception {item.path}  # {item.why}"
    if isinstance(item, str):  # a root or a finding
        return one_line(item)
    return one_line(repr(item))


def matches(entry, wanted: str) -> bool:
    pool = entry.pool
    return wanted in (pool.name, f"{pool.version}/{pool.name}", entry.hat)


def run(sysroot: str, plugins, wanted: str) -> tuple[list[dict], list]:
    """(one record per hook call answered for the pools matching `wanted`, those entries)."""
    from .check import plugin_findings

    plugins.trace = []
    result = generate.plan(sysroot, plugins)
    entries = [e for e in result.entries if matches(e, wanted)]
    for e in entries:  # the check hook runs only for `check`: trace it too
        for app in (e.policy.apps if e.policy else []):
            plugin_findings(plugins, e.site, app)
    records, seen = [], set()
    for e in entries:
        for hook, plugin, pool, app, items in plugins.trace:
            # detection repeats in rounds: each answer is shown once
            key = (id(pool), hook, plugin, app, tuple(map(repr, items)))
            if pool is not e.pool or not items or key in seen:
                continue
            seen.add(key)
            records.append({"pool": e.pool.name, "version": e.pool.version, "hat": e.hat,
                            "hook": hook.removeprefix("php_fpm_apparmor_"), "plugin": plugin,
                            "app": app, "items": [_item(i, e.policy) for i in items]})
    plugins.trace = None
    return records, entries


def lines(records: list[dict], entries) -> list[str]:
    out = []
    for e in entries:
        out.append(f"pool {e.pool.version}/{e.pool.name} (hat {e.hat}): "
                   + (f"FAILED: {e.problem}" if e.problem else "ok"))
        mine = [r for r in records if r["pool"] == e.pool.name and r["version"] == e.pool.version]
        if not mine:
            out.append("  no plugin answered" + (" before that failure" if e.problem else ""))
        for r in mine:
            app = f" [{r['app']}]" if r["app"] else ""
            for item in r["items"]:
                out.append(f"  {r['hook']:<10} {r['plugin']}{app}: {item}")
    return out

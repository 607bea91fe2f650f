"""Test helpers for app plugins, shipped with the package (no source checkout needed).

    from php_fpm_apparmor import testing
    import myshop_apparmor

    def test_myshop(tmp_path):
        (tmp_path / "var/www/shop/shop").mkdir(parents=True)          # your app's marker files
        (tmp_path / "var/www/shop/shop/version.php").write_text("<?php $v = '2.1';")
        site = testing.site(tmp_path, "shop", ["/var/www/shop"])       # a pool and its site
        built = testing.build(site, testing.plugins(myshop_apparmor))  # detect -> rules -> text
        assert [a.name for a in built.apps] == ["myshop"]
        assert testing.failed_expectations(built, myshop_apparmor.EXPECTATIONS,
                                           root="/var/www/shop", other="/var/www/other") == []
        assert testing.problems(built) == []                           # the generator's checks
        assert testing.compile_error(built) is None                    # the real apparmor_parser

Nothing here changes the process: no environment variable is set, no global state kept
(plugins are loaded into a fresh manager each call). Everything runs the real core:
`policy.build`, `render.render`, the generator's invariants, python3-apparmor as the static
judge and apparmor_parser to compile. `run_in_kernel()` runs the same tables in a real
AppArmor kernel through a harness you pass in (the project's tests/vm is not installed).
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from . import apps as apps_mod
from . import evaluate
from . import plugins as plugins_mod
from . import policy as policy_mod
from . import render, validate
from .expect import Expectation
from .sites import Site

__all__ = ["plugins", "fake_pool", "site", "build", "Built", "judge", "failed_expectations",
           "problems", "compile_error", "plugin_only", "run_in_kernel", "kernel_probes"]


# --- plugins ---------------------------------------------------------------------------

def plugins(*extra, external: bool = False):
    """The installed first-party plugins plus `extra` (your plugin module(s), not yet
    installed or installed: each is registered once). `external=True` adds every other
    installed third-party plugin. Load failures raise: a test must not pass without them."""
    names = {getattr(m, "__name__", "") for m in extra}
    eps = [ep for ep in plugins_mod.metadata.entry_points(group=plugins_mod.PROJECT)
           if ep.value not in names]
    loaded = plugins_mod.load(entry_points=eps, extra=extra, external=external)
    if loaded.problems:
        raise RuntimeError("plugins refused: " + "; ".join(loaded.problems))
    return loaded


# --- a pool and its site without the pool reader -----------------------------------------

def fake_pool(name: str, ini: dict | None = None, env: dict | None = None, listen: str | None = None,
              version: str = "8.2", chdir: str | None = None, user: str = "www-data", **more):
    """A stand-in for pools.Pool with the attributes the core and the plugins read."""
    ini = dict(ini or {})
    pool = SimpleNamespace(
        name=name, version=version, config_file=f"/etc/php/{version}/fpm/pool.d/{name}.conf",
        hat=name, user=user, group=user, listen=listen or f"/run/php/{name}.sock",
        access_log=None, slowlog=None, chroot=None, chdir=chdir, directives={}, origins={},
        env=dict({"PATH": "/usr/local/bin:/usr/bin:/bin"} if env is None else env), php_values={},
        php_admin_values=dict(ini), ini=lambda key: ini.get(key))
    for k, v in more.items():
        setattr(pool, k, v)
    return pool


def site(sysroot, name: str, roots, settings: dict | None = None, mode: str = "enforce", **pool) -> Site:
    """The Site of pool `name` with `roots` (system paths; files live below `sysroot`)."""
    return Site(pool=fake_pool(name, **pool), hat=name, roots=[str(r) for r in roots],
                sysroot=str(sysroot), settings=dict(settings or {}), mode=mode)


@dataclass
class Built:
    """One pool through the real core: its apps, its PoolPolicy and the rendered file."""

    site: Site
    apps: list
    policy: object
    text: str

    def __iter__(self):  # found, policy, text = build(...)
        return iter((self.apps, self.policy, self.text))

    def __getitem__(self, i):
        return (self.apps, self.policy, self.text)[i]


def build(s: Site, plugins_=None) -> Built:
    """Detect, build the policy and render it for one site, exactly as `generate` does
    (a plugin's mistake raises the same PluginError that fails the pool there)."""
    plugins_ = plugins_ if plugins_ is not None else plugins()
    found = apps_mod.detect(s, plugins_)
    pol = policy_mod.build(s, found, plugins_)
    return Built(s, found, pol, render.render(pol))


# --- the static judge --------------------------------------------------------------------

SHELLS = ("/bin/sh", "/usr/bin/sh", "/bin/dash", "/usr/bin/dash")
PATH = ("/usr/local/bin", "/usr/bin", "/bin")


def _resolve(word: str, sysroot: str) -> str:
    if word.startswith("/"):
        return word
    for d in PATH:
        if Path(sysroot, d.lstrip("/"), word).exists() or Path(d, word).exists():
            return f"{d}/{word}"
    return f"/usr/bin/{word}"


def _commands(script: str):
    """Simple commands of a `sh -c` string: words, redirections dropped."""
    for part in script.replace("&&", ";").replace("||", ";").replace("|", ";").split(";"):
        words = [w for w in shlex.split(part) if not any(c in w for c in "<>")]
        if words:
            yield words


def may_exec(profiles: dict, name: str, argv, sysroot: str = "/", depth: int = 0) -> bool:
    """Would the program `argv` run from profile `name`, and everything it starts?"""
    if depth > 6 or name not in profiles:
        return False
    t = evaluate.exec_transition(profiles[name], argv[0])
    if t is None:
        return False
    mode, target = t
    nxt = name if "i" in mode.lower() and "p" not in mode.lower() and "c" not in mode.lower() \
        else target
    if nxt not in profiles:
        return False
    base = os.path.basename(argv[0])
    if argv[0] in SHELLS and len(argv) > 2 and argv[1] == "-c":
        return all(may_exec(profiles, nxt, [_resolve(w[0], sysroot)] + w[1:], sysroot, depth + 1)
                   for w in _commands(argv[2]))
    if base in ("nice", "stdbuf", "timeout"):
        rest = [a for a in argv[1:] if not a.startswith("-") and not a.lstrip("-").isdigit()]
        if rest:
            return may_exec(profiles, nxt, [_resolve(rest[0], sysroot)] + rest[1:], sysroot, depth + 1)
    return True


def shared_profiles(sendmail_cmds=()) -> dict:
    """The children every pool shares (php-fpm.d/_shared), parsed like a pool's file."""
    text = render.render_shared(policy_mod.shared_profiles(list(sendmail_cmds)))
    return {k: v for k, v in evaluate.parse(text).items() if k != "php-fpm"}


def judge(text: str, hat: str, exp: Expectation, sysroot: str = "/") -> bool:
    """True if the rendered policy allows the (resolved) expectation's operation."""
    profiles = evaluate.parse(text)
    profiles.update(shared_profiles())
    name = f"php-fpm//{hat}"
    if exp.op in ("read", "write"):
        return evaluate.allows(profiles[name], exp.op, exp.target)
    if exp.op == "exec":
        return may_exec(profiles, name, list(exp.argv or (exp.target,)), sysroot)
    if exp.op == "mail":  # mail() runs sendmail_path through /bin/sh -c
        return may_exec(profiles, name, ["/bin/sh", "-c", f"{exp.target} -t -i"], sysroot)
    raise ValueError(exp.op)


def failed_expectations(built: Built, table, **places: str) -> list[str]:
    """The rows of an EXPECTATIONS table the built policy gets wrong, one line each.
    `places` fills the placeholders the rows use ({root}, {other}, or any of your own)."""
    out = []
    for row in table:
        missing = row.placeholders - set(places)
        if missing:
            out.append(f"{row.op} {row.target}: no value for {', '.join(sorted(missing))}")
            continue
        exp = row.resolve(**places)
        if judge(built.text, built.site.hat, exp, built.site.sysroot) != (exp.expect == "allow"):
            out.append(f"{exp.op} {exp.argv or exp.target}: expected {exp.expect} ({exp.why})")
    return out


# --- the generator's own checks and the real parser --------------------------------------

def plugin_only(pol):
    """A copy of the policy without the core's rules: what the app plugins alone contribute."""
    import copy
    import dataclasses

    pol = copy.copy(pol)
    pol.master = []
    pol.profiles = [dataclasses.replace(p, rules=[r for r in p.rules if r.source != "core"])
                    for p in pol.profiles]
    return pol


def problems(*built, core: bool = True) -> list[str]:
    """The generator's invariants over built pools judged together, as `generate` judges a
    whole system (core=False: the plugins' rules alone). Each item: a Built or a
    (site, policy, text) triple."""
    from . import generate, invariants

    triples = [(b.site, b.policy, b.text) if isinstance(b, Built) else tuple(b) for b in built]
    if not core:
        triples = [(s, plugin_only(p), None) for s, p, _ in triples]
        triples = [(s, p, render.render(p)) for s, p, _ in triples]
    entries = [generate.Entry(pool=s.pool, hat=s.hat, site=s, policy=p, text=t) for s, p, t in triples]
    plan = generate.Plan(triples[0][0].sysroot, entries=entries)
    invariants.check_plan(plan)
    return [e.problem for e in entries if e.problem]


def compile_error(built_or_text, hat: str | None = None, sysroot=None) -> str | None:
    """apparmor_parser's verdict on a pool file inside a php-fpm parent (None = compiles).
    Pass a Built, or (text, hat, sysroot). Raises RuntimeError without apparmor_parser."""
    if isinstance(built_or_text, Built):
        text, hat, sysroot = built_or_text.text, built_or_text.site.hat, built_or_text.site.sysroot
    else:
        text = built_or_text
    if validate.parser() is None:
        raise RuntimeError("apparmor_parser is not installed (apt install apparmor)")
    return validate.compile_pools({hat: text}, validate.search_dirs(str(sysroot or "/")))[hat]


# --- the same tables in a real kernel ------------------------------------------------------

def kernel_probes(harness, tables: dict) -> list:
    """harness.Probe objects for {pool: (places, rows)}: one PHP probe per row, in the pool."""
    import json

    probes = []
    for name, (places, rows) in tables.items():
        for row in rows:
            exp = row.resolve(**places)
            target = json.dumps(list(exp.argv or (exp.target,))) if exp.op == "exec" else exp.target
            probes.append(harness.Probe(pool=name, socket=f"/run/php/{name}.sock",
                                        script=f"{places['root']}/probe.php", op=exp.op,
                                        target=target, expect=exp.expect, why=exp.why))
    return probes


def run_in_kernel(harness, tree, tables: dict, artefacts=None, name: str = "app-tables") -> tuple[list[str], dict]:
    """Boot `harness` (the project's tests/vm module, or anything with its Probe, Phase,
    Scenario and run()) on `tree` (a system tree whose policy `generate` already wrote)
    and run every row of `tables` ({pool: (places, rows)}) as a probe in its pool.
    Returns (the failures, one line each ([] = the kernel agrees with every row), the
    harness's summary: boot time, results, the kernel's denials)."""
    summary = harness.run(harness.Scenario(
        name=name, tree=str(tree),
        phases=[harness.Phase("enforce", load=["/etc/apparmor.d/php-fpm-apparmor"],
                              probes=kernel_probes(harness, tables),
                              shell=["cat /sys/kernel/security/apparmor/profiles"])]),
        artefacts=str(artefacts) if artefacts else None)
    if not summary.get("booted"):
        return [f"the VM did not boot: {summary}"], summary
    results = summary["phases"][0]["results"]
    return [f"{r['pool']} {r['op']} {r['target']} expect {r['expect']}: ok={r['ok']} "
            f"errno={r['errno']} label={r.get('label')} {r['detail'][:160]}"
            for r in results if not r.get("passed")], summary

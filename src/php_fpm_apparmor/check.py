"""`check`, and the commands that change one pool: complain, enforce, enable.

Edits to the admin's files (pool .conf, php-fpm-apparmor.conf) are minimal line edits
that keep comments and layout, written atomically.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from . import apply as apply_mod, cli as cli_mod, generate, hatting, install, load, policy, sites, webserver
from .errors import ConfigError

OK, PROBLEMS, USAGE = 0, 1, 2


def _unit_files(sysroot: str, service: str) -> list[Path]:
    files = []
    for d in ("lib/systemd/system", "usr/lib/systemd/system", "etc/systemd/system", "run/systemd/system"):
        base = Path(sysroot, d)
        files.append(base / service)
        drop = base / f"{service}.d"
        if drop.is_dir():
            files += sorted(drop.glob("*.conf"))
    return [f for f in files if f.is_file()]


def no_new_privileges(sysroot: str, service: str) -> str | None:
    """The unit file line that sets NoNewPrivileges=yes (it blocks the hat change)."""
    for f in _unit_files(sysroot, service):
        for n, line in enumerate(f.read_text(errors="replace").splitlines(), 1):
            m = re.match(r"^\s*NoNewPrivileges\s*=\s*(\S+)", line)
            if m and m.group(1).lower() in sites.TRUE:
                return f"{f}:{n}"
    return None


def hat_support(sysroot: str, binary: str) -> bool | None:
    """Does this php-fpm know apparmor_hat? (built with libapparmor); None if unknown."""
    path = Path(sysroot, binary.lstrip("/"))
    try:
        with open(path, "rb") as f:
            return b"apparmor_hat" in f.read()
    except OSError:
        return None


def findings(args, plugins) -> list[str]:
    result = generate.plan(args.root, plugins)
    out = hatting.findings(result) + list(result.problems)  # pools without a hat lead
    out += [f"note: {e.note}" for e in result.entries if e.note]
    out += [f"note: {c}" for e in result.entries for c in getattr(e, "crossings", ())]  # share =
    out += [f"warning: {c}" for e in result.entries for c in getattr(e, "local_code", ())]
    live = args.root in ("/", "")
    if live and not load.enabled(args.root):
        out.append("AppArmor is not enabled in the running kernel: boot with apparmor=1 "
                   "security=apparmor (Debian's default kernel has it) and install the apparmor package")
    main, ours = apply_mod.main_profile(args.root)
    if not ours and main and re.search(r"flags=\([^)]*complain", main.read_text(errors="replace")):
        out.append(f"note: {main} (the php-fpm master profile) is in complain mode: the master is not "
                   f"confined, the hats are; run aa-enforce {main} once the hats are quiet")
    seen_versions = {}
    for e in result.entries:
        inst = getattr(e.pool, "installation", None)
        if inst and inst.version not in seen_versions:
            seen_versions[inst.version] = inst
    for inst in seen_versions.values():
        if hat_support(args.root, inst.binary) is False:
            out.append(f"{inst.binary} was built without AppArmor: apparmor_hat is unknown to it; "
                       f"use a php-fpm built with libapparmor (Debian's is)")
        nnp = no_new_privileges(args.root, inst.service)
        if nnp:
            out.append(f"{nnp}: NoNewPrivileges=yes on {inst.service} blocks the change into a hat; "
                       f"remove it (systemctl edit {inst.service})")
    shared: dict[tuple, tuple[set, set]] = {}
    for e in result.entries:
        p = e.pool
        if e.site:
            # `owner` rules keep pools apart in a shared dir only if they run as different users.
            for key, path in policy.runtime_dirs(p).items():
                keys, names = shared.setdefault((e.site.worker(path), p.user), (set(), set()))
                keys.add(key)
                names.add(f"{p.version}/{p.name}")
        if e.policy:
            for app in e.policy.apps:
                for line in plugin_findings(plugins, e.site, app):
                    if line.startswith("note: "):  # informational: never fails `check`
                        out.append(f"note: pool {p.name} ({app.name}): {line[6:]}")
                    else:
                        out.append(f"pool {p.name} ({app.name}): {line}")
    for (path, user), (keys, names) in sorted(shared.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        if len(names) > 1:
            key = sorted(keys)[0]
            out.append(f"pools {', '.join(sorted(names))} run as {user} and share {path} "
                       f"({', '.join(sorted(keys))}): each can read the others' files there; give "
                       f"each pool its own (php_admin_value[{key}] = {path}/<pool>) or its own user")
    groups = _groups(args.root)
    confined = [e for e in result.entries if e.site]
    for e in confined:
        reach = [o for o in confined if o is not e and can_connect(e.pool, o.pool, groups)]
        if reach:
            names = ", ".join(f"{o.pool.version}/{o.pool.name} ({o.pool.listen})" for o in reach)
            out.append(f"{e.pool.config_file}: pool {e.pool.name} (user {e.pool.user}) may connect to the "
                       f"FastCGI socket of {names} and so run PHP in that pool's hat; give each pool "
                       f"its own user, and sockets owned by the web server (listen.owner = www-data, "
                       f"listen.mode = 0660) that no pool user can open")
    by_root: dict[str, list[str]] = {}
    for e in result.entries:
        for r in (e.site.roots if e.site else []):
            by_root.setdefault(r, []).append(f"{e.pool.version}/{e.pool.name}")
    for r, names in sorted(by_root.items()):
        if len(names) > 1:
            out.append(f"note: pools {', '.join(names)} share the site root {r}: each reads (and "
                       f"with write = writes) what the other does; fine for one site served twice")
    out += config_findings(args.root, result)
    out += override_findings(args.root)
    out += sites.symlink_notes(result.entries)
    out += webserver.findings(result, args.root)
    # A plugin that was refused leaves its apps' pools without their rules: not a mere warning.
    out += [f"warning: {w}" for w in result.warnings if w not in plugins.problems] + plugins.problems
    return list(dict.fromkeys(out))


KNOWN_KEYS = {"root", "read", "write", "share", "mode", *sites.FLAGS}


def override_findings(sysroot: str) -> list[str]:
    """The admin's overrides: those generate left out of a pool's file because they do not
    compile (its header says so), and those edited since generate last loaded them."""
    out = []
    for path in install.ours(sysroot).values():
        left_out = (install.header(path) or {}).get("left_out")
        if left_out:
            out.append(left_out)
    before = install.read_state(sysroot)
    if before is not None:  # none yet: nothing was generated, or an old version's state
        now = install.local_digests(sysroot)
        for name in sorted(n for n in now.keys() | before.keys() if now.get(n) != before.get(n)):
            out.append(f"note: {install.at(sysroot, '/etc/apparmor.d/local/' + name)}: changed since the last "
                       f"generate: run php-fpm-apparmor generate to apply it")
    return out


def _groups(sysroot: str) -> dict[str, set]:
    """{group: members} from the system's /etc/group (primary groups are added by the caller)."""
    out = {}
    try:
        for line in install.at(sysroot, "/etc/group").read_text(errors="replace").splitlines():
            parts = line.split(":")
            if len(parts) >= 4:
                out[parts[0]] = {m for m in parts[3].split(",") if m}
    except OSError:
        pass
    return out


def can_connect(a, b, groups: dict) -> bool:
    """May pool a's worker connect() to pool b's unix socket, by Unix permissions alone?

    AppArmor on Debian 12's kernel does not mediate connect() to a path socket, and php-fpm
    honours PHP_ADMIN_VALUE from any FastCGI client: whoever may connect runs code in b."""
    if not (b.listen or "").startswith("/") or a is b:
        return False
    owner = b.listen_owner or b.user or "root"
    group = b.listen_group or b.group or owner
    try:
        mode = int(b.listen_mode or "0660", 8)
    except ValueError:
        mode = 0o660
    member = a.group == group or (a.user or "") in groups.get(group, set())
    acl_users = {u.strip() for u in (b.listen_acl_users or "").split(",") if u.strip()}
    acl_groups = {g.strip() for g in (b.listen_acl_groups or "").split(",") if g.strip()}
    if acl_users or acl_groups:  # php-fpm then ignores owner/group/mode
        return a.user in acl_users or a.group in acl_groups or \
            any((a.user or "") in groups.get(g, set()) for g in acl_groups)
    return bool(mode & 0o002 or (a.user == owner and mode & 0o200) or (member and mode & 0o020))


def config_findings(sysroot: str, result) -> list[str]:
    """Sections that name no pool, and keys nobody reads: a typo there is silently ignored."""
    conf = sites.load_config(sysroot)
    pools = {e.pool.name.lower() for e in result.entries}
    pools |= {f"{e.pool.version}/{e.pool.name}".lower() for e in result.entries}
    out = []
    lines = getattr(conf, "lines", {})
    for section in conf.sections():
        line = lines.get((section.lower(), ""))
        at = f"{conf.path}:{line}" if line else conf.path
        if section.lower() not in pools:
            out.append(f"{at}: [{section}] names no pool (pools: {', '.join(sorted(pools)) or 'none'})")
        for key in conf[section]:
            if key not in KNOWN_KEYS and key not in conf.defaults():
                out.append(f"note: {at}: [{section}] {key} is not a setting of php-fpm-apparmor "
                           f"(a third-party plugin may read it)")
    return out


def plugin_findings(plugins, site, app) -> list[str]:
    """The plugins' own findings for one app; a broken check hook is a finding itself."""
    from .errors import PluginError
    from .plugins import short

    hook = "php_fpm_apparmor_check"
    try:
        named = plugins.call(hook, with_names=True, site=site, app=app)
    except PluginError as exc:
        return [str(exc)]
    return [line if isinstance(line, str) else f"plugin {plugin}: {hook}: returned {short(line)}, not a string"
            for plugin, line in named]


def one_line(text: str) -> str:
    """A finding as exactly one printed line: a newline inside it (from a plugin, a file
    name) must not print as a second, fake finding."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def cmd_check(args, plugins) -> int:
    out = findings(args, plugins)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for line in cli_mod.shown(out, "findings", "check"):
            print(one_line(line))
        if not out:
            print("no problems found")
    return PROBLEMS if any(not l.startswith(("note:", "warning:")) for l in out) else OK


# --- minimal INI edits ------------------------------------------------------------------

def set_in_section(text: str, section: str, key: str, value: str, after_line: int | None = None) -> str:
    """Set `key = value` in [section] (case-insensitive), keeping every other line as it is."""
    lines = text.splitlines(True)
    start = None
    for i, line in enumerate(lines):
        m = re.match(r"^\s*\[([^\]]*)\]", line)
        if m and start is not None:
            end = i
            break
        if m and m.group(1).strip().lower() == section.lower() and (after_line is None or i + 1 == after_line):
            start = i
    else:
        end = len(lines)
    if start is None:
        sep = "" if not lines or lines[-1].endswith("\n") else "\n"
        return text + f"{sep}\n[{section}]\n{key} = {value}\n"
    for i in range(start + 1, end):
        if re.match(rf"^\s*{re.escape(key)}\s*=", lines[i]):
            lines[i] = f"{key} = {value}\n"
            return "".join(lines)
    lines.insert(start + 1, f"{key} = {value}\n")
    return "".join(lines)


def _find(args, plugins, name: str):
    result = generate.plan(args.root, plugins)
    version, _, pool = name.rpartition("/")
    hits = [e for e in result.entries if e.pool.name.lower() == pool.lower()
            and (not version or e.pool.version == version)]
    if len(hits) != 1:
        found = ", ".join(f"{e.pool.version}/{e.pool.name}" for e in result.entries)
        what = "several pools match" if hits else "no such pool"
        raise LookupError(f"{name}: {what} (pools: {found or 'none'})")
    return result, hits[0]


def _find_or_say(args, plugins):
    """(plan, entry) for args.pool, or None after saying why (a usage error)."""
    try:
        return _find(args, plugins, args.pool)
    except LookupError as exc:
        print(f"php-fpm-apparmor: {exc}", file=sys.stderr)
        return None


def cmd_mode(args, plugins) -> int:
    found = _find_or_say(args, plugins)
    if found is None:
        return USAGE
    result, e = found
    path = install.at(args.root, sites.CONFIG)
    text = path.read_text() if path.exists() else "# php-fpm-apparmor: one section per pool\n"
    section = sites.section_for(sites.load_config(args.root), e.pool) or f"{e.pool.version}/{e.pool.name}"
    install.write_atomic(path, set_in_section(text, section, "mode", args.command), keep_meta=True)
    # Only this pool changed: the others keep their installed files (and loaded hats).
    outcome = apply_mod.apply(generate.plan(args.root, plugins, only=[e.hat or e.pool.name]))
    for p in outcome.problems:
        print(f"php-fpm-apparmor: {p}", file=sys.stderr)
    print(f"pool {e.pool.name}: {args.command} (in {path} [{section}])")
    return PROBLEMS if outcome.problems else OK


def cmd_enable(args, plugins) -> int:
    return hatting.cmd_enable(args, plugins)

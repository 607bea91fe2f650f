"""php-fpm-apparmor [--root DIR] [--json] COMMAND: exit 0 ok, 1 problems, 2 usage."""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import subprocess
import sys
from pathlib import Path

# A run is short and makes a few hundred thousand small objects per thousand pools, nearly
# all of them kept (the plans) and nearly none in cycles (2,650 of them garbage at the end
# of a 1,000-pool plan): each pass of the collector walks the young objects only to find
# them alive. At the default pace (every 700 allocations) that was a tenth of `status`'s
# and `generate`'s time, every 70,000 still a twentieth; now a thousand pools' plan runs
# without a pass (the same peak memory) and a larger host gets one per million objects.
gc.set_threshold(1_000_000, 100, 100)

from . import __version__, apps as apps_mod, forked, generate, install, load, plugins as plugins_mod, progress, render
from .errors import ConfigError, LibraryError

OK, PROBLEMS, USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="php-fpm-apparmor", description=__doc__.split(":")[0])
    p.add_argument("--root", default="/", help="system tree to work on (default /); not / = no loading")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--version", action="version", version=__version__)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("status", help="one row per pool: hat, site, apps, mode, file, loaded")
    g = sub.add_parser("generate", help="write, validate, install and load every pool's hat")
    g.add_argument("--dry-run", action="store_true", help="validate only, change nothing")
    g.add_argument("--diff", action="store_true", help="show what would change")
    g.add_argument("--php", metavar="X.Y", help="exit non-zero only for this PHP version's pools (ExecStartPre)")
    g.add_argument("--quiet", action="store_true", help="print problems only")
    g.add_argument("--pool", action="append", metavar="NAME",
                   help="re-plan only this pool (or hat); the others keep their installed files")
    sub.add_parser("check", help="find problems, each with a fix hint")
    for name, text in (("complain", "log, don't block"), ("enforce", "block"), ("enable", "set apparmor_hat")):
        c = sub.add_parser(name, help=f"{text} for POOL")
        c.add_argument("pool", nargs="?" if name == "enable" else None, help="pool name, or X.Y/name")
        if name == "enforce":
            c.add_argument("--if-quiet", type=float, metavar="DAYS",
                           help="only if the log shows no complain-mode event of its hat in DAYS")
        if name == "enable":
            c.add_argument("--all", action="store_true",
                           help="every pool without apparmor_hat: load the hats, set them, reload php-fpm")
    lr = sub.add_parser("learn", help="rules the audit log shows a pool still needs -> local overrides")
    lr.add_argument("--log", action="append", metavar="FILE",
                    help="audit or kernel log to read (default: the usual ones); repeatable")
    lr.add_argument("--pool", action="append", metavar="POOL", help="only this pool (name or hat); repeatable")
    lr.add_argument("--since", metavar="TIME", help="only records since TIME (YYYY-MM-DD[ HH:MM], 7d, 12h or boot)")
    lr.add_argument("--write", action="store_true",
                    help="append the rules to /etc/apparmor.d/local/php-fpm.d/<hat>, then regenerate "
                         "(on a terminal without it: asked rule by rule)")
    pl = sub.add_parser("plugins", help="list app plugins (exit 1 if one was refused)")
    pl.add_argument("--trace", metavar="POOL", help="which plugin answered what for POOL (name, X.Y/name or hat)")
    sub.add_parser("clean", help="remove every generated file and unload its hats")
    return p


def _say(args, *lines, stream=sys.stdout):
    for line in lines:
        print(line, file=stream)


def _err(message: str) -> None:
    print(f"php-fpm-apparmor: {message}", file=sys.stderr)


def cmd_status(args, plugins) -> int:
    # Reads only: pools, sites and apps, the installed files and the kernel's list. No
    # policy is built, no invariant checked, no parser run (`check` and `generate` do).
    # The apps are those the installed hat was built for (its header); only a pool without
    # a file has its apps looked for (plugins read the sites' PHP: the slow part).
    result = generate.plan(args.root, plugins, build=False, detect=False)
    present = load.loaded() if load.enabled(args.root) else {}
    files = [install.at(args.root, f"{install.POOL_DIR}/{e.hat}") if e.hat else None for e in result.entries]
    headers = [install.header(f) for f in files]
    todo = [e for e, h in zip(result.entries, headers) if h is None and e.site and e.site.roots]
    with plugins.session():  # one SIGALRM handler for every pool's detection
        # a host's first status: a thousand sites' PHP read, shared over the CPUs
        found = forked.map_forked(lambda e: _detected(e, plugins), todo)
    for e, (names, problem) in zip(todo, found):
        if names is not None:
            e.apps = names
        elif not e.problem:
            e.problem = problem
    rows = []
    for e, file, installed in zip(result.entries, files, headers):
        p = e.pool
        if installed is not None:
            e.apps = installed["apps"]
        rows.append({
            "version": p.version, "pool": p.name, "hat": e.hat, "apparmor_hat": p.hat,
            "user": p.user, "group": p.group, "listen": p.listen, "config_file": p.config_file,
            "site_root": e.site.roots if e.site else [],
            "vhosts": e.site.vhosts if e.site else [],
            "root_origin": e.site.origin if e.site and e.site.roots else None,
            "apps": e.apps,
            "mode": e.site.mode if e.site else None,
            "file": str(file) if installed is not None else None,
            "installed_mode": installed.get("mode") if installed else None,
            "loaded": (f"php-fpm//{e.hat}" in present) if present else None,
            "loaded_mode": present.get(f"php-fpm//{e.hat}") if present else None,
            "exceptions": installed.get("exceptions", []) if installed else [],
            "problem": e.problem or e.note or (installed or {}).get("left_out"),
        })
    quiet = _quiet(args.root, result.entries)
    for r, e in zip(rows, result.entries):
        r["quiet"] = quiet.get(e.hat)
    if args.json:
        print(json_rows(rows))
    else:
        cols = ("version", "pool", "hat", "mode", "user", "listen", "site_root", "vhosts", "apps", "loaded",
                "root_origin")
        table = [[_cell(r[c]) for c in cols] for r in rows]
        widths = [max(len(c), *(len(t[i]) for t in table)) if table else len(c) for i, c in enumerate(cols)]
        print("  ".join(c.upper().ljust(w) for c, w in zip(cols, widths)).rstrip())
        for t in table:
            print("  ".join(v.ljust(w) for v, w in zip(t, widths)).rstrip())
        # every PHP-writing permission a plugin asked for, the problems, the quiet pools
        tail = [f"exception {r['version']}/{r['pool']}: {x}" for r in rows for x in r["exceptions"]]
        for r in rows:
            if r["problem"]:
                tail.append(f"! {r['problem']}")
            if r["quiet"]:
                tail.append(f"pool {r['pool']} is in complain mode, {r['quiet']}")
        for line in shown(tail, "lines", "status"):
            print(line)
        missing = sum(1 for r in rows if r["hat"] and r["file"] is None)
        if missing:  # the text has no file column: say so once (a new host, a new pool)
            print(f"note: {missing} of {len(rows)} pool(s) have no hat file installed (their apps are "
                  f"what the plugins find now): php-fpm-apparmor generate writes them")
    for w in result.warnings:
        _err(f"warning: {w}")
    return PROBLEMS if result.problems else OK


def _detected(e, plugins) -> tuple[list[str] | None, str | None]:
    """(the apps the plugins find in a pool's site, as status shows them, or None; a problem)."""
    try:
        return [f"{a.name} {a.version or ''}".strip() for a in apps_mod.detect(e.site, plugins)], None
    except (ValueError, TypeError) as exc:
        return None, f"{e.pool.config_file}: pool {e.pool.name}: {exc}"


# A line with its pool names and paths blanked out: what makes a thousand pools' lines "the
# same" (WordPress sites without DISALLOW_FILE_MODS, WP Super Cache's exception in each).
_SPECIFIC = re.compile(r"\bpools? [^ (:]+|/[^\s,:;()']*")
SHOWN_ALIKE = 3


def shown(lines: list[str], what: str, command: str) -> list[str]:
    """The lines to print: of lines alike, the first few and how many more there are
    (--json lists every one)."""
    first: dict[str, tuple[str, int]] = {}
    out = []
    for line in lines:
        key = _SPECIFIC.sub("_", line)
        seen, n = first.get(key, (line, 0))
        first[key] = (seen, n + 1)
        if n < SHOWN_ALIKE:
            out.append(line)
    for line, n in first.values():
        if n > SHOWN_ALIKE:
            out.append(f"note: {n - SHOWN_ALIKE} more {what} like {line[:100]!r}... (--json {command} "
                       f"lists every one)")
    return out


def json_rows(rows: list) -> str:
    """A JSON array with one row per line: readable, and encoded by json's C encoder (an
    indented dump is pure Python, a tenth of `status`'s time on a thousand pools)."""
    if not rows:
        return "[]"
    return "[\n" + ",\n".join(json.dumps(r) for r in rows) + "\n]"


def _quiet(root, entries) -> dict:
    """Complain-mode pools: since when quiet (a bounded look at the newest log records)."""
    if not any(e.site and e.site.mode == "complain" for e in entries):
        return {}  # learn pulls in the log readers and python3-apparmor: only when needed
    from . import learn

    try:
        return learn.quiet_since(root, entries)
    except OSError:
        return {}


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ",".join(value) or "-"
    return str(value)


def cmd_generate(args, plugins) -> int:
    shown = progress.for_cli(args.quiet or args.json)
    try:
        result = generate.plan(args.root, plugins, progress=shown, only=args.pool)
        return _generate(args, result, shown, plugins)
    finally:
        if shown:
            shown.close()


def _generate(args, result, shown, plugins) -> int:
    if args.diff:
        import difflib  # only here: every import is paid by `status` too

        files = [(e.hat, e.text) for e in result.ready if not e.keep]
        if files:
            files.append((render.SHARED_FILE, result.shared))
        for name, text in files:
            path = install.at(args.root, f"{install.POOL_DIR}/{name}")
            old = path.read_text() if path.exists() else ""
            sys.stdout.writelines(difflib.unified_diff(
                old.splitlines(True), text.splitlines(True), str(path), f"{path} (new)"))
    from . import apply as apply_mod  # not for `status`, which must start fast

    outcome = apply_mod.apply(result, dry_run=args.dry_run or args.diff, progress=shown)
    if shown:
        shown.close()
    for w in result.warnings:
        _err(f"warning: {w}")
    if not args.quiet:
        for e in result.entries:
            if e.note:
                _say(args, f"skipped: {e.note}")
    for problem in outcome.problems:
        _err(problem)
    if args.json:
        print(json.dumps({"written": outcome.written, "removed": outcome.removed,
                          "problems": outcome.problems, "loaded": outcome.loaded,
                          "reloaded": outcome.reloaded, "hats_loaded": outcome.hats_loaded,
                          "hats_kept": outcome.hats_kept, "cache": outcome.cache,
                          "overrides_left_out": outcome.left_out,
                          "load_skipped": outcome.load_skipped,
                          "pools": [{"pool": e.pool.name, "version": e.pool.version, "hat": e.hat,
                                     "ok": e in result.ready and not e.problem,
                                     "core_only": bool(e.problem and e.fallback)} for e in result.entries]},
                         indent=2))
    elif not args.quiet:
        verb = "would write" if args.dry_run else "wrote"
        for w in outcome.written:
            _say(args, f"{verb} {w}")
        for r in outcome.removed:
            _say(args, f"removed {r}")
        ok = [e for e in result.ready if not e.problem]
        _say(args, f"{len(ok)} pool(s) ready, {len(outcome.problems)} problem(s)"
                   + ("" if args.dry_run else
                      f"; loaded {len(outcome.hats_loaded)} profile(s) alone" if outcome.hats_loaded else
                      f"; loaded the parent with what changed, {len(outcome.hats_kept)} profile(s) kept as "
                      f"loaded" if outcome.hats_kept else
                      "; loaded" if outcome.loaded else
                      f"; {outcome.load_skipped}" if outcome.load_skipped else "; nothing changed"))
    if args.php:
        # As ExecStartPre: php-fpm starts whatever one pool's problem is (every pool with
        # apparmor_hat has its previous or its core-only hat). Only when no pool of this
        # version that sets apparmor_hat could find its hat (AppArmor off, nothing loaded)
        # would every worker exit 70 and be respawned in a loop: then it does not start.
        hatted = [e for e in result.entries if e.pool.version == args.php and e.pool.hat]
        live = args.root in ("/", "")
        present = load.loaded() if live and load.enabled(args.root) else None
        bad = []
        for e in hatted:
            if live and present is None:
                bad.append(f"pool {e.pool.name}: apparmor_hat = {e.pool.hat} but AppArmor is not enabled")
            elif present is not None and f"php-fpm//{e.pool.hat}" not in present:
                bad.append(f"pool {e.pool.name}: hat {e.pool.hat} is not loaded")
            elif e.problem and not install.at(args.root, f"{install.POOL_DIR}/{e.hat or e.pool.hat}").exists():
                bad.append(f"pool {e.pool.name}: no hat could be generated")
        for b in bad:
            _err(f"{b}: its workers will fail to start (exit 70) and php-fpm respawns them; "
                 f"fix the problem above, or remove apparmor_hat from the pool")
        if hatted and len(bad) == len(hatted):
            _err(f"no pool of PHP {args.php} has its hat: not starting php-fpm {args.php}")
            return PROBLEMS
        return OK
    # A plugin that could not be loaded leaves its apps' pools without their rules.
    return PROBLEMS if outcome.problems or plugins.problems else OK


def cmd_learn(args, plugins) -> int:
    from . import learncmd

    return learncmd.cmd_learn(args, plugins)


def _enforce(args, plugins) -> int:
    from . import learncmd

    return learncmd.cmd_enforce(args, plugins)


def cmd_plugins(args, plugins) -> int:
    if args.trace:
        from . import trace

        records, entries = trace.run(args.root, plugins, args.trace)
        if not entries:
            _err(f"no pool {args.trace!r}")
            return USAGE
        if args.json:
            print(json.dumps(records, indent=2))
        else:
            print("\n".join(trace.lines(records, entries)))
        return PROBLEMS if plugins.problems or any(e.problem for e in entries) else OK
    rows = [vars(i) for i in plugins.info]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        width = max([16] + [len(r["name"]) for r in rows])
        for r in rows:
            print(f"{r['name']:<{width}} {r['version']:<10} {r['source']}")
    for w in plugins.problems:
        _err(f"error: {w}")
    return PROBLEMS if plugins.problems else OK


def cmd_clean(args, plugins) -> int:
    removed = []
    with install.lock(args.root):
        hats = install.ours(args.root)
        for hat, path in hats.items():
            path.unlink()
            removed.append(str(path))
        from . import webcache

        webcache.forget(args.root)
        main = install.at(args.root, install.MAIN_PROFILE)
        if main.exists() and install.is_ours(main):
            main.unlink()
            removed.append(str(main))
        if load.enabled(args.root) and hats:
            names = [n.split("//", 1)[1] for n in load.loaded()
                     if any(n == f"php-fpm//{h}" or n.startswith(f"php-fpm//{h}_") for h in hats)]
            error = load.unload(names)
            if error:
                _err(f"unloading failed: {error}")
                return PROBLEMS
    for r in removed:
        _say(args, f"removed {r}")
    return OK


def run() -> None:
    """The command as a process (`php-fpm-apparmor`, `python3 -m php_fpm_apparmor`): main(),
    then out without tearing the interpreter down. Freeing a thousand pools' objects one by
    one took 60-90 ms of a 0.5 s `status`; nothing is left for the exit to do (every
    temporary file and parser thread is closed when its step ends)."""
    code = main()
    forked.flush()
    os._exit(code)


def main(argv=None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return USAGE if exc.code else OK
    if not args.command:
        parser.print_usage(sys.stderr)
        return USAGE
    if not Path(args.root).is_dir():
        _err(f"--root {args.root}: not a directory")
        return USAGE
    # "//" or "/." is the live system too: it must get the live system's checks.
    args.root = os.path.realpath(args.root)
    commands = {"status": cmd_status, "generate": cmd_generate, "plugins": cmd_plugins,
                "clean": cmd_clean, "check": "cmd_check", "complain": "cmd_mode",
                "enforce": _enforce, "enable": "cmd_enable", "learn": cmd_learn}
    command = commands[args.command]
    if isinstance(command, str):  # check.py pulls in apply and the parser: not for `status`
        from . import check as check_mod

        command = getattr(check_mod, command)
    try:
        plugins = plugins_mod.load(sysroot=args.root)
        return command(args, plugins)
    except (ConfigError, LibraryError) as exc:
        _err(str(exc))
        return PROBLEMS
    except TimeoutError as exc:
        _err(str(exc))
        return PROBLEMS
    except KeyboardInterrupt:
        return PROBLEMS
    except OSError as exc:  # full disk, read-only fs, permissions: say it in one line
        _err(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))
        return PROBLEMS
    except (ValueError, UnicodeError) as exc:  # a value no step expected: one line, no traceback
        _err(f"cannot handle this input: {exc}")
        return PROBLEMS

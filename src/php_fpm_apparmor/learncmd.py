"""The `learn` and `enforce --if-quiet` commands (cli.py hands over to these)."""

from __future__ import annotations

import json
import sys

from . import apply as apply_mod, auditlog, generate, install, learn

OK, PROBLEMS, USAGE = 0, 1, 2


def _err(message: str) -> None:
    print(f"php-fpm-apparmor: {message}", file=sys.stderr)


def _interactive(args) -> bool:
    return not args.write and not args.json and sys.stdin.isatty() and sys.stdout.isatty()


def cmd_learn(args, plugins) -> int:
    try:
        since = auditlog.parse_since(args.since)
    except ValueError as exc:
        _err(str(exc))
        return USAGE
    result = generate.plan(args.root, plugins)
    pools = args.pool or []
    names = {n for e in result.entries if e.hat
             for n in (e.hat, e.pool.name, f"{e.pool.version}/{e.pool.name}")}
    unknown = [p for p in pools if p not in names]
    if unknown:
        _err(f"--pool {', '.join(unknown)}: no such pool or hat (pools: "
             f"{', '.join(sorted(e.pool.name for e in result.entries)) or 'none'})")
        return USAGE
    counter, sources = auditlog.read(args.root, args.log, since)
    proposal = learn.propose(counter.seen(), result, pools)
    read_from = ", ".join(sources) or "no log found"
    offered = len(proposal.offers)  # ask() keeps only the allowed ones
    if args.json:
        print(json.dumps({
            "rules": proposal.rules,
            "proposals": [{"profile": o.name, "rule": o.rule, "alternatives": o.options[1:],
                           "paths": o.paths, "count": o.count, "first": o.first, "last": o.last}
                          for o in proposal.offers],
            "refused": [{"profile": p, "what": w, "why": y, "count": n} for p, w, y, n in proposal.refused],
            "already_allowed": proposal.allowed, "read": sources, "notes": proposal.notes}, indent=2))
    elif _interactive(args):
        _show_refused(proposal)
        if proposal.offers:
            try:
                learn.ask(proposal)
            except KeyboardInterrupt:
                print("\nnothing written")
                return OK
    else:
        for name, offers in _by_name(proposal.offers).items():
            print(f"# {install.LOCAL_DIR}/{name}")
            for o in offers:
                more = f", {len(o.paths)} paths" if len(o.paths) > 1 else ""
                print(f"{o.rule}  # {o.count} event(s){more}, first {learn.when(o.first)}, "
                      f"last {learn.when(o.last)}")
        _show_refused(proposal)
    if not args.json:
        for n in proposal.notes:
            _err(f"warning: {n}")
        allowed = f", {len(proposal.offers)} allowed" if _interactive(args) else ""
        print(f"read {read_from}: {offered} rule(s) proposed{allowed}, {len(proposal.refused)} "
              f"refused, {proposal.allowed} event(s) the policy already allows")
    if not (args.write or _interactive(args)) or not proposal.rules:
        return OK
    backup = learn.write(proposal, args.root, read_from)
    outcome = apply_mod.apply(generate.plan(args.root, plugins), wrote_overrides=frozenset(backup))
    # the whole profile, or a hat learned into (its overrides are that hat's change alone)
    if any("does not compile" in p for p in outcome.problems) or set(outcome.refused) & set(backup):
        learn.undo(backup)  # the admin's files go back to what they were
        for p in outcome.problems:
            _err(p)
        _err("learned rules removed again: the profile did not compile with them")
        return PROBLEMS
    for name, (path, _) in backup.items():
        print(f"appended to {path}")
    return PROBLEMS if outcome.problems else OK


def _by_name(offers):
    out: dict = {}
    for o in offers:
        out.setdefault(o.name, []).append(o)
    return out


def _show_refused(proposal) -> None:
    for profile, what, why, count in proposal.refused:
        print(f"not learned: {profile}: {what}: {why} ({count} event(s))")


def cmd_enforce(args, plugins) -> int:
    """`enforce POOL [--if-quiet DAYS]`: switch only when the log shows no complain event."""
    from . import check

    if getattr(args, "if_quiet", None) is not None:
        if args.if_quiet <= 0:
            _err("--if-quiet DAYS must be more than 0")
            return USAGE
        found = check._find_or_say(args, plugins)
        if found is None:
            return USAGE
        _, e = found
        if not e.hat or not e.site:
            _err(f"pool {e.pool.name}: {e.problem or e.note or 'no hat'}")
            return PROBLEMS
        if e.site.mode == "enforce":  # nothing to switch; its old ALLOWED lines are history
            print(f"pool {e.pool.name} is already in enforce mode")
            return OK
        quiet, message = learn.quiet_check(args.root, e, args.if_quiet)
        if not quiet:
            print(message)
            return PROBLEMS
        print(message)
    return check.cmd_mode(args, plugins)

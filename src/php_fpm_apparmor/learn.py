"""Learn from the audit log what a site still needs, per pool, into local overrides.

audit log -> events (python3-libapparmor parses each line) -> rules per hat or child ->
/etc/apparmor.d/local/php-fpm.d/<name> (the admin's files, included by every generated
profile; written only with --write, validated with the whole profile before it stays).

Least privilege still holds for what is learned: a write of PHP-like code into a site, any
access to another pool's root, and any exec are never turned into rules; they are listed
for the admin to decide (exec needs a child profile, not a rule in the hat).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import LibAppArmor

from . import evaluate, install, render
from .policy import SHARED_SENDMAIL, SHARED_SH, lit

# Only where the kernel's own records land: /var/log/syslog is left out, any process can
# write a line there that looks like one (logger, PHP's syslog()).
LOGS = ("/var/log/audit/audit.log", "/var/log/kern.log")
# The kernel's record forms, anchored: auditd ("type=AVC msg=audit(...)"), the kernel ring
# buffer as dmesg or kern.log show it ("... kernel: [  1.2] audit: type=1400 audit(...)").
# auditd's USER_AVC lines and anything else a user process can log do not match.
_AUDIT = re.compile(r"^(?:type=(?:AVC|1400) msg=|(?:\S+ +\d+ [\d:]+ \S+ kernel: |\S+T\S+ \S+ kernel: )?"
                    r"(?:\[ *\d+\.\d+\] )?audit: type=1400 )audit\((\d+\.\d+:\d+)\): *(apparmor=.*)$")
# requested_mask letters -> file rule permissions (c)reate and (d)elete need w
_PERMS = {"r": "r", "w": "w", "a": "a", "c": "w", "d": "w", "k": "k", "l": "l", "m": "m"}
_FAMILIES = {"inet", "inet6", "unix", "netlink"}
_TYPES = {"stream", "dgram", "raw", "seqpacket"}
MARK = "# learned by php-fpm-apparmor"


@dataclass(frozen=True)
class Event:
    status: str  # DENIED or ALLOWED (complain mode)
    operation: str
    profile: str
    name: str
    requested: str
    family: str = ""
    sock_type: str = ""


def parse_line(line: str) -> Event | None:
    """One audit/kernel log line (auditd, dmesg, journal or syslog form) -> Event."""
    m = _AUDIT.match(line.rstrip("\n"))
    if not m or "apparmor=" not in line:
        return None
    rec = LibAppArmor.parse_record(f"type=AVC msg=audit({m.group(1)}): {m.group(2)}")
    if not rec or not rec.profile or rec.event not in (LibAppArmor.AA_RECORD_DENIED, LibAppArmor.AA_RECORD_ALLOWED):
        return None
    status = "DENIED" if rec.event == LibAppArmor.AA_RECORD_DENIED else "ALLOWED"
    return Event(status, rec.operation or "", rec.profile, rec.name or "", rec.requested_mask or "",
                 rec.net_family or "", rec.net_sock_type or "")


def journal_lines(since: str = "-30d") -> list[str]:
    """The kernel's lines from the systemd journal (Debian 12 logs there when neither auditd
    nor rsyslog is installed). `-k` is the kernel transport: no user process can add to it."""
    exe = shutil.which("journalctl")
    if not exe:
        return []
    try:
        proc = subprocess.run([exe, "-k", "-o", "short-iso", "--no-pager", "-q", "--since", since],
                              capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return proc.stdout.splitlines() if proc.returncode == 0 else []


def read_events(paths, lines=()) -> list[Event]:
    events = [ev for ev in map(parse_line, lines) if ev is not None]
    for path in paths:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    ev = parse_line(line)
                    if ev is not None:
                        events.append(ev)
        except FileNotFoundError:
            continue
    return events


@dataclass
class Proposal:
    rules: dict  # local file name -> sorted rule lines
    refused: list  # (profile, what, why) never turned into rules


def _local_name(profile: str, known: set) -> str | None:
    """The local override that profile includes, or None if it is not one of ours."""
    if not profile.startswith("php-fpm//"):
        return None
    name = profile.split("//", 1)[1].split("//", 1)[0]  # php-fpm//a//null-x: the hat a
    return name if name in known else None


def propose(events, plan) -> Proposal:
    known = {SHARED_SH, SHARED_SENDMAIL}
    own_roots, all_roots = {}, []
    for e in plan.ready:
        for prof in e.policy.profiles:
            known.add(prof.name)
            own_roots[prof.name] = e.site.roots
        all_roots += [(r, e.hat) for r in e.site.roots]
    files: dict[str, dict[str, set]] = {}  # local name -> path -> perms
    nets: dict[str, set] = {}
    refused = []
    for ev in events:
        name = _local_name(ev.profile, known)
        if name is None:
            continue
        roots = own_roots.get(name, [])
        if ev.family:
            fam = ev.family if ev.family in _FAMILIES else ""
            kind = ev.sock_type if ev.sock_type in _TYPES else ""
            if fam:
                nets.setdefault(name, set()).add(f"network {fam}{' ' + kind if kind else ''},")
            continue
        if ev.operation == "capable":
            refused.append((ev.profile, f"capability {ev.name}", "a worker needs no capability: "
                            "find out why it asks before granting one by hand"))
            continue
        if not ev.name.startswith("/"):
            continue
        if "x" in ev.requested or ev.operation == "exec":
            refused.append((ev.profile, f"exec {ev.name}", "a program needs a child profile: add it "
                            "with a plugin or by hand in the local file"))
            continue
        perms = "".join(sorted({_PERMS[c] for c in ev.requested if c in _PERMS}, key="rwaklm".index))
        if not perms:
            continue
        other = [h for r, h in all_roots if evaluate.inside(ev.name, r) and r not in roots]
        if other:
            refused.append((ev.profile, f"{perms} {ev.name}", f"inside pool {other[0]}'s root"))
            continue
        inside = any(evaluate.inside(ev.name, r) for r in roots)
        if set(perms) & set("wal") and inside and evaluate.is_forbidden_name(ev.name):
            refused.append((ev.profile, f"{perms} {ev.name}", "writes code or server config into "
                            "the site: only a plugin's named exception may allow that"))
            continue
        try:
            path = lit(ev.name)
        except ValueError as exc:
            refused.append((ev.profile, f"{perms} {ev.name!r}", str(exc)))
            continue
        files.setdefault(name, {}).setdefault(path, set()).update(perms)
    rules = {}
    for name in sorted(set(files) | set(nets)):
        lines = sorted(nets.get(name, ()))
        lines += [f"{render.quote(path)} {''.join(p for p in 'rwaklm' if p in perms)},"
                  for path, perms in sorted(files.get(name, {}).items())]
        rules[name] = lines
    return Proposal(rules, refused)


def write(proposal: Proposal, sysroot: str, source: str) -> dict[str, tuple[Path, str | None]]:
    """Append new rules to the local files; return {name: (path, previous text)} to undo."""
    backup = {}
    stamp = time.strftime("%Y-%m-%d %H:%M")
    for name, lines in proposal.rules.items():
        path = install.at(sysroot, f"{install.LOCAL_DIR}/{name}")
        old = path.read_text() if path.exists() else None
        have = set((old or "").splitlines())
        new = [l for l in lines if l not in have]
        if not new:
            continue
        text = (old or "") + ("" if not old or old.endswith("\n") else "\n")
        text += f"{MARK} on {stamp} from {source}\n" + "".join(l + "\n" for l in new)
        backup[name] = (path, old)
        install.write_atomic(path, text)
    return backup


def undo(backup) -> None:
    for path, old in backup.values():
        if old is None:
            path.unlink(missing_ok=True)
        else:
            install.write_atomic(path, old)

"""A host fully hatted in one step: which pools lack apparmor_hat and what that exposes
(`check` leads with them), and `enable POOL` / `enable --all`.

A pool without apparmor_hat runs its PHP in the master's profile, and the master stays in
complain mode while any pool lacks a hat (generate.main_text_for): that pool's PHP reads
every other pool's files. Debian's stock `www` pool (from phpX.Y-fpm) is one.

`enable` does it in the only safe order (a worker must never ask for a hat that is not
loaded: a 6.12 kernel crashed replacing a profile under such workers):
  1. generate and load the hats (the master still in complain);
  2. write `apparmor_hat = <hat>` into each pool's section: one line, the file's mode and
     owner kept, only for hats the kernel now has;
  3. reload php-fpm once per PHP version (its workers move into their hats);
  4. generate again: with every pool hatted the master leaves complain mode.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import apply as apply_mod, generate, install, load

OK, PROBLEMS, USAGE = 0, 1, 2
_HAT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_SECTION = re.compile(r"^\s*\[([^\]]*)\]")


def unhatted(result) -> list:
    return [e for e in result.entries if not e.pool.hat]


def findings(result) -> list[str]:
    """`check`'s first lines: each pool without a hat and what that exposes. A problem when
    other pools exist (their files are exposed), a note for a lone pool."""
    lacking = unhatted(result)
    out = []
    for e in lacking:
        p = e.pool
        others = [f"{o.pool.version}/{o.pool.name}" for o in result.entries if o is not e]
        how = "run php-fpm-apparmor enable --all" if not e.note else \
            "set root = DIR in its section of /etc/php-fpm-apparmor/php-fpm-apparmor.conf (or remove " \
            "the pool if nothing uses it), then run php-fpm-apparmor enable --all"
        if others:
            out.append(f"{p.config_file}: pool {p.name} has no apparmor_hat, so its PHP runs in the master's "
                       f"profile, which stays in complain mode while a pool lacks a hat: pool {p.name}'s PHP "
                       f"can read and write every other pool's files ({', '.join(others)}), and whoever can connect to "
                       f"{p.listen or 'its socket'} runs PHP there; {how} "
                       f"(php-fpm-apparmor enable {p.version}/{p.name} for this pool alone)")
        else:
            out.append(f"note: {p.config_file}: pool {p.name} has no apparmor_hat: its PHP runs in the "
                       f"master's profile (complain mode); {how}")
    return out


# --- step 2: the one-line edit --------------------------------------------------------------

def add_hat_line(conf: Path, section: str, hat: str) -> str | None:
    """Write `apparmor_hat = hat` as the first line of [section] in `conf`; None when done,
    else why it was refused (nothing written). Mode and owner are kept (write_atomic)."""
    if not _HAT.match(hat):
        return f"hat name {hat!r} is not a plain name"
    real = Path(os.path.realpath(conf))
    if not real.is_file():
        return f"{conf} is not a regular file"
    try:
        text = real.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return f"{conf}: cannot read it as UTF-8 text ({exc}): add apparmor_hat = {hat} by hand"
    lines = text.splitlines(True)
    heads = [i for i, line in enumerate(lines)
             if (m := _SECTION.match(line)) and m.group(1).strip().lower() == section.lower()]
    if len(heads) != 1:
        return (f"{conf}: [{section}] appears {len(heads)} times (php-fpm may name the pool through a "
                f"variable or merge sections): add apparmor_hat = {hat} to the pool's section by hand")
    end = next((i for i in range(heads[0] + 1, len(lines)) if _SECTION.match(lines[i])), len(lines))
    if any(re.match(r"^\s*apparmor_hat\s*=", lines[i]) for i in range(heads[0] + 1, end)):
        return f"{conf}: [{section}] already has an apparmor_hat line: edit it by hand"
    if not lines[heads[0]].endswith("\n"):
        return f"{conf}: the [{section}] line does not end the line: add apparmor_hat = {hat} by hand"
    lines.insert(heads[0] + 1, f"apparmor_hat = {hat}\n")
    install.write_atomic(conf, "".join(lines), keep_meta=True)
    return None


# --- the command ---------------------------------------------------------------------------

@dataclass
class Targets:
    entries: list = field(default_factory=list)  # pools to hat
    refused: list[str] = field(default_factory=list)  # "pool X: why not"


def choose(result, name: str | None) -> Targets:
    """The pools `enable NAME` / `enable --all` (name None) would hat, and the refusals."""
    t = Targets()
    if name is None:
        candidates = unhatted(result)
    else:
        version, _, pool = name.rpartition("/")
        hits = [e for e in result.entries if e.pool.name.lower() == pool.lower()
                and (not version or e.pool.version == version)]
        if len(hits) != 1:
            found = ", ".join(f"{e.pool.version}/{e.pool.name}" for e in result.entries)
            raise LookupError(f"{name}: {'several pools match' if hits else 'no such pool'} "
                              f"(pools: {found or 'none'})")
        candidates = hits
    for e in candidates:
        label = f"pool {e.pool.version}/{e.pool.name}"
        if e.pool.hat:
            continue  # already hatted (only reachable by name)
        if e.problem or e.note or not e.hat:
            t.refused.append(f"{label}: {e.problem or e.note or 'no hat could be generated'}")
        elif not _HAT.match(e.hat):
            t.refused.append(f"{label}: hat name {e.hat!r} is not a plain name")
        else:
            t.entries.append(e)
    return t


def reload_php_fpm(service: str) -> str | None:
    """Reload one php-fpm (workers re-exec into their hats); a stopped one stays stopped."""
    if not shutil.which("systemctl"):
        return f"systemctl not found: reload {service} yourself"
    proc = subprocess.run(["systemctl", "try-reload-or-restart", service], capture_output=True, text=True)
    return None if proc.returncode == 0 else (proc.stderr.strip() or f"systemctl exited {proc.returncode}")


def _say(message: str):
    print(f"php-fpm-apparmor: {message}", file=sys.stderr)


def cmd_enable(args, plugins) -> int:
    if bool(args.all) == bool(args.pool):
        _say("enable: name one POOL, or --all")
        return USAGE
    name = args.pool
    result = generate.plan(args.root, plugins)
    try:
        targets = choose(result, name)
    except LookupError as exc:
        _say(str(exc))
        return USAGE
    for r in targets.refused:
        _say(f"not enabled: {r}")
    if not targets.entries:
        if name is not None and not targets.refused:
            print(f"pool {name} already has apparmor_hat")
            return OK
        if not targets.refused:
            print("every pool already has apparmor_hat")
        return PROBLEMS if targets.refused else OK
    if not load.enabled(args.root):
        _say("AppArmor is not enabled (or --root is not /): setting apparmor_hat now would make "
             "php-fpm's workers fail in a loop; nothing changed")
        return PROBLEMS
    # 1. the hats first
    outcome = apply_mod.apply(result, want_main=True)
    present = load.loaded()
    status = PROBLEMS if targets.refused else OK
    versions = {}
    for e in targets.entries:
        label = f"pool {e.pool.version}/{e.pool.name}"
        if f"{load.PARENT}//{e.hat}" not in present:
            _say(f"not enabled: {label}: hat {e.hat} is not loaded "
                 f"({'; '.join(outcome.problems) or 'unknown'}); its file is unchanged")
            status = PROBLEMS
            continue
        # 2. one line in the pool's file
        why = add_hat_line(Path(e.pool.config_file), e.pool.name, e.hat)
        if why:
            _say(f"not enabled: {label}: {why}")
            status = PROBLEMS
            continue
        print(f"{label}: apparmor_hat = {e.hat} set in {e.pool.config_file}")
        inst = e.pool.installation
        if inst:
            versions[inst.service] = True
    # 3. one reload per version
    reloaded = True
    for service in versions:
        error = reload_php_fpm(service)
        if error:
            _say(f"reloading {service} failed: {error}; its workers keep running unhatted until it is "
                 f"reloaded (systemctl reload {service}), the master profile stays in complain mode")
            reloaded = False
            status = PROBLEMS
        else:
            print(f"{service} reloaded")
    # 4. the master leaves complain once every pool has a hat (and runs in it)
    if versions and reloaded:
        after = generate.plan(args.root, plugins)
        outcome = apply_mod.apply(after, want_main=True)
        for p in outcome.problems:
            _say(p)
            status = PROBLEMS
        left = [f"{e.pool.version}/{e.pool.name}" for e in unhatted(after)]
        if left:
            print(f"the php-fpm master profile stays in complain mode: {', '.join(left)} still without a hat")
        else:
            print("every pool has its hat: the php-fpm master profile left complain mode")
    return status

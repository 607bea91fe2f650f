"""Issue 10's figures as instruction counts: the same on any machine, busy or quiet.

    .venv/bin/python bench/bench_instructions.py [--pools 1000]

bench_scale.py's seconds drift by a third with this shared machine's speed; callgrind
counts the instructions a run executes (user space; system calls count as the few
instructions that make them), so two commits compare exactly: run it in a `git worktree`
of each to see what a change saved. It is
no stand-in for the time ratio to `php-fpm8.2 -t`: php-fpm spends most of its time in the
kernel (0.46 s of 0.53 s on the 1,000-pool tree is system time), which callgrind does not
count; its user-space count is printed for scale only. Builds bench/wptree.py's tree and
prints the instructions of:
  - `status --json` with nothing installed (the plugins detect every site's apps), on one
    CPU (taskset: the forked copies would otherwise do part of it out of sight);
  - `status --json` once every pool's file is installed;
  - generate --dry-run's text + invariants (bench_scale's `check` step, start-up included).
About 50 times slower than a plain run: some five minutes for 1,000 pools. Numbers only.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

PY = sys.executable


def instructions(cmd: list[str], one_cpu: bool = False) -> int:
    """Instructions callgrind counts for `cmd` (its forked copies, if any, not included)."""
    with tempfile.TemporaryDirectory() as tmp:
        run = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out", *cmd]
        if one_cpu:
            run = ["taskset", "-c", "0", *run]
        proc = subprocess.run(run, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    m = re.search(r"Collected : (\d+)", proc.stderr)
    if not m:
        raise SystemExit(f"no count from callgrind for {cmd[:3]}: {proc.stderr[-500:]}")
    return int(m.group(1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pools", type=int, default=1000)
    args = ap.parse_args()
    missing = [t for t in ("valgrind", "taskset") if not shutil.which(t)]
    if missing:
        print(f"missing: {' '.join(missing)} (apt install valgrind util-linux)")
        return 2
    import bench_scale
    import wptree

    # Byte-compiled like the installed package, as bench_scale does.
    subprocess.run([PY, "-m", "compileall", "-q", str(REPO / "src"), str(REPO / "plugins")], check=True,
                   stdout=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory(prefix="bench-instr-") as tmp:
        root = wptree.build(Path(tmp) / "root", args.pools)
        conf = bench_scale.fpm_t_tree(root, Path(tmp) / "fpm-t")
        fpm = instructions(["/usr/sbin/php-fpm8.2", "-t", "-y", str(conf)])
        status = [PY, "-m", "php_fpm_apparmor", "--root", str(root), "--json", "status"]
        fresh = instructions(status, one_cpu=True)
        check = instructions([PY, str(HERE / "bench_scale.py"), "--inner", "check", str(root)])
        bench_scale.step("install", root)  # every pool's file, without the parser
        installed = instructions(status)
    g = 1e9
    print(f"\n== {args.pools} WordPress pools, instructions (callgrind)")
    print(f"php-fpm8.2 -t:                      {fpm / g:7.2f} G (user space only: its time is mostly the kernel's)")
    print(f"status --json (nothing installed):  {fresh / g:7.2f} G (one CPU: all of the plugins' detection)")
    print(f"status --json (all installed):      {installed / g:7.2f} G")
    print(f"generate --dry-run, text+invariants:{check / g:7.2f} G (start-up included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Text + invariants for N WordPress pools: Python time and peak memory (issue 10, goal:
1,000 pools in < 2 s, peak < 300 MB).

Builds bench/wptree.py's tree (ISPConfig-style pools, chdir + open_basedir, their own tmp
for sessions and uploads, one WordPress per pool, WebP Express + WP Super Cache in every
third). Then times `generate.plan(check=False)`
(read, sites, apps, policy, render) and `invariants.check_plan` (the closed list, on
automata) separately, and the peak RSS of both. Nothing is asserted.

    .venv/bin/python bench/bench_invariants.py [N]
"""

import sys
import tempfile
import time
import resource
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import wptree  # noqa: E402  (the tree bench_scale times too)
from php_fpm_apparmor import cli, generate, invariants, plugins  # noqa: E402,F401  (cli: the command's GC pace)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    pm = plugins.load()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        root = wptree.build(Path(tmp), n)
        print(f"tree of {n} WordPress pools built in {time.perf_counter() - t:.1f} s")
        # CPU time of this process: 7 helpers share this machine's 2 cores, wall time wobbles
        t, c = time.perf_counter(), time.process_time()
        result = generate.plan(str(root), pm, check=False)
        text_s, text_w = time.process_time() - c, time.perf_counter() - t
        t, c = time.perf_counter(), time.process_time()
        invariants.check_plan(result)
        inv_s, inv_w = time.process_time() - c, time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # the whole process
    apps = sum(len(e.policy.apps) for e in result.entries if e.policy)
    print(f"pools ready: {len(result.ready)} of {n}; apps detected: {apps}; problems: {len(result.problems)}")
    for p in result.problems[:3]:
        print("  ", p[:300])
    print(f"text (read+sites+apps+policy+render): {text_s:.3f} s CPU ({text_w:.3f} s wall)")
    print(f"invariants (automata):                {inv_s:.3f} s CPU ({inv_w:.3f} s wall, "
          f"{inv_s / n * 1e3:.3f} ms/pool)")
    print(f"text + invariants: {text_s + inv_s:.3f} s -> {(text_s + inv_s) / 2.0:.2f}x of the 2 s goal; "
          f"peak RSS {peak / 2**20:.0f} MB -> {peak / 2**20 / 300:.2f}x of 300 MB")


if __name__ == "__main__":
    main()

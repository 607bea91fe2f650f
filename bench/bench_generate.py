"""How fast is `generate` per pool, next to what apparmor_parser spends compiling it?

Builds a fake system tree with N pools (ISPConfig-like: one site each), then times:
  text        pools -> sites -> apps -> policy -> render (no invariants, no parser)
  invariants  the python3-apparmor read-back checks on the rendered text
  compile     apparmor_parser -Q -K on the whole php-fpm profile (a subset of pools,
              scaled: compile time is linear in the number of hats)
and prints the per-pool costs and their ratios. Budget (issue 3): text for 1,000 pools < 1 s.
Usage: .venv/bin/python bench/bench_generate.py [N_POOLS] [N_COMPILE]
"""

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from php_fpm_apparmor import apply as apply_mod, generate, invariants, plugins, validate  # noqa: E402
from systree import make_tree, pool_conf  # noqa: E402


def best(fn, runs=3):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    n_compile = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    pm = plugins.load()
    with tempfile.TemporaryDirectory() as tmp:
        root = make_tree(Path(tmp), {f"web{i}": pool_conf(f"web{i}", f"/var/www/clients/client{i}/web{i}/web",
                                                          hat=f"web{i}") for i in range(n)})
        text_s, result = best(lambda: generate.plan(str(root), pm, check=False))
        inv_s, _ = best(lambda: invariants.check_plan(result), runs=1)
        assert len(result.ready) == n, result.problems[:3]
        main_text = apply_mod.template()
        files = {e.hat: e.text for e in result.ready[:n_compile]}
        t = time.perf_counter()
        err = apply_mod._compile_whole(main_text, files, validate.search_dirs(str(root)))
        compile_s = time.perf_counter() - t
        assert err is None, err
    per_text = text_s / n
    per_inv = inv_s / n
    per_compile = compile_s / n_compile
    print(f"pools: {n}; compile measured on {n_compile}")
    print(f"text (read+sites+apps+policy+render): {text_s:.3f} s total, {per_text * 1e3:.3f} ms/pool "
          f"-> {text_s:.2f}x of the 1 s budget for {n} pools")
    print(f"invariants (python3-apparmor):        {inv_s:.3f} s total, {per_inv * 1e3:.3f} ms/pool")
    print(f"apparmor_parser compile:              {per_compile * 1e3:.1f} ms/pool "
          f"(~{per_compile * n:.0f} s for {n} pools)")
    print(f"ratio text/compile: {per_text / per_compile:.4f}   "
          f"ratio (text+invariants)/compile: {(per_text + per_inv) / per_compile:.4f}")


if __name__ == "__main__":
    main()

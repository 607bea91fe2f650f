"""A real app over HTTP on a booted Debian system (marker `system`, issue 8 item 5).

Debian's `wordpress` package with mariadb, nginx and a pool with its own hat in enforce
mode: install, log in, upload an image and publish through HTTP, then anonymous page views
written to a page cache in WP Super Cache's layout (a stand-in drop-in: wordpress.org is out
of CI's reach), with zero denials; in the same boot every row (read, write, exec, mail) of the
WordPress and WP Super Cache plugins' EXPECTATIONS runs in the pool: allowed rows work,
attacks refused with a DENIED line naming the hat. Artefacts in
artifacts/system/<release>/wordpress/.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from php_fpm_apparmor_plugins import wordpress as wp_plugin, wp_super_cache
from system import image, machine, payload
from test_system_admin import jsonl, package, pytestmark  # noqa: F401  (same skips)

REPO = Path(__file__).resolve().parent.parent
PLACES = dict(root="/usr/share/wordpress", content="/var/lib/wordpress/wp-content",
              other="/var/www/shop", data="/srv/none")
STAGES = ["boot", "wp-setup", "wp-use", "wp-page-cache", "wp-attacks"]
TABLES = {"wordpress": wp_plugin.EXPECTATIONS, "wp-super-cache": wp_super_cache.EXPECTATIONS}


def rows() -> list[dict]:
    """Every row of both tables, each op (read, write, exec, mail), resolved for the boot."""
    out = []
    for table, expectations in TABLES.items():
        for exp in expectations:
            r = exp.resolve(**PLACES)
            out.append({"table": table, "op": r.op, "target": r.target,
                        "argv": list(r.argv or (r.target,)), "expect": r.expect, "why": r.why})
    assert {r["op"] for r in out} == {"read", "write", "exec", "mail"}, out
    return out


def run(release: str, deb: Path) -> tuple:
    """The WordPress scenario booted on `release`: (Boot, summary, stages). Runs in a worker
    thread of the `booted` fixture (tests/conftest.py), beside another."""
    img = image.get(release, machine.warm)
    out = REPO / "artifacts" / "system" / release / "wordpress"
    shutil.rmtree(out, ignore_errors=True)
    pl = payload.wordpress(out / "payload", img.release, deb, rows())
    boot = machine.boot(img, pl, out, max_boots=1)
    checks = jsonl(boot.results / "checks.jsonl")
    stages = jsonl(boot.results / "stages.jsonl")
    summary = {"release": release, "deb": str(deb), "scenario_seconds": round(boot.seconds, 1),
               "stages": stages, "checks": len(checks),
               "failed": [c for c in checks if not c["ok"]]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    shutil.rmtree(out / "payload", ignore_errors=True)
    return boot, summary, stages


@pytest.mark.parametrize("release", ["trixie", "bookworm"])
def test_wordpress_over_http(release, booted):
    boot, summary, stages = booted[(__name__, release)].result()
    print(json.dumps({k: v for k, v in summary.items() if k != "failed"}, indent=1))
    assert boot.returncode is not None, f"host timeout, see {boot.serial}"
    assert (boot.results / "done").exists(), f"the guest did not finish, see {boot.serial}"
    assert not summary["failed"], json.dumps(summary["failed"], indent=1)
    assert {s["stage"] for s in stages} >= set(STAGES), stages

"""The admin scenario on booted Debian 13 and 12 systems (marker `system`).

Each release's image (systemd, apt, nginx, php-fpm, AppArmor, our Depends; tests/system/
image.py) is built from Debian's archive once per machine and cached outside the clone;
each run boots a qcow2 overlay of it under qemu TCG with the built .deb on a payload disk.
Inside, tests/system/guest/admin.py does what an admin does and checks every step; here we
read its results back and fail on any failed or missing check. Artefacts (JSON results, the
serial console of every boot, the journal, commands and their output) land in
artifacts/system/<release>/admin/.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from system import image, machine, payload

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "artifacts" / "system"
# Every stage must report: a stage that silently vanished is a failure too.
STAGES = ["boot", "install", "pools", "reload-new-pool", "restart", "broken-pool", "package-upgrade",
          "php-fpm-upgrade",
          "apparmor-profiles-install", "apparmor-profiles-purge", "plugin-install",
          "plugin-remove", "reboot", "after-reboot", "enable-all", "remove", "purge"]

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(os.geteuid() != 0, reason="mmdebstrap --mode=root needs root"),
    pytest.mark.skipif(bool(image.missing_tools()),
                       reason=f"missing: {' '.join(image.missing_tools())} (tools/bootstrap)"),
    pytest.mark.skipif(os.environ.get("PFA_SYSTEM") == "0", reason="PFA_SYSTEM=0"),
]


def package(release, release_package) -> Path:
    """The .deb under test: PFA_SYSTEM_DEB (e.g. a release candidate), else this tree built
    for `release` (Debian builds per release: e.g. dh_movetousr on Debian 13)."""
    given = os.environ.get("PFA_SYSTEM_DEB")
    return Path(given).resolve() if given else release_package(release)[0]


def jsonl(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text().splitlines()] if path.exists() else []


def run(release: str, deb: Path) -> tuple:
    """The scenario booted on `release` with `deb` installed: (Boot, summary, checks, stages).
    Runs in a worker thread of the `booted` fixture (tests/conftest.py), beside another."""
    img = image.get(release, machine.warm)
    timings = json.loads((img.dir / "timings.json").read_text())
    out = ARTIFACTS / release / "admin"
    shutil.rmtree(out, ignore_errors=True)
    pl = payload.admin(out / "payload", img.release, deb)
    boot = machine.boot(img, pl, out, max_boots=3)
    checks = jsonl(boot.results / "checks.jsonl")
    stages = jsonl(boot.results / "stages.jsonl")
    summary = {
        "release": release, "image": str(img.dir), "deb": str(deb),
        "image_build_seconds_when_built": timings["build_seconds"],
        "image_warm_boot_seconds_when_built": timings["warm_seconds"],
        "image_built_this_run": img.build_seconds > 0,
        "scenario_seconds": round(boot.seconds, 1), "qemu_exit": boot.returncode,
        "boots": jsonl(boot.results / "boots.jsonl"),
        "stages": stages,
        "checks": len(checks), "failed": [c for c in checks if not c["ok"]],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    for scratch in ("payload", "plugin-tree"):  # the .debs: the builds have them
        shutil.rmtree(out / scratch, ignore_errors=True)
    return boot, summary, checks, stages


@pytest.mark.parametrize("release", ["trixie", "bookworm"])
def test_admin_scenario(release, booted):
    boot, summary, checks, stages = booted[(__name__, release)].result()
    print(json.dumps({k: v for k, v in summary.items() if k != "failed"}, indent=1))

    assert boot.returncode is not None, f"host timeout after {boot.seconds:.0f} s, see {boot.serial}"
    assert (boot.results / "done").exists(), f"the guest did not finish, see {boot.serial}"
    assert not summary["failed"], json.dumps(summary["failed"], indent=1)
    seen = {s["stage"] for s in stages}
    checked = {c["stage"] for c in checks}
    assert seen >= set(STAGES) and checked >= set(STAGES) - {"reboot"}, (
        sorted(set(STAGES) - seen), sorted(set(STAGES) - {"reboot"} - checked))

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Our own plugins get the hooks' arguments uncopied in production (plugins.GUARD_ENV): the
# suite copies and compares for them too, so one that changes its arguments fails a test.
os.environ["PHP_FPM_APPARMOR_GUARD_ALL_PLUGINS"] = "1"
# The web servers' readings `generate` keeps (webcache.py): every later use of one in the
# suite reads the configs afresh too and fails if the two differ.
os.environ["PHP_FPM_APPARMOR_CHECK_CACHE"] = "1"
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def cli(tmp_path):
    """Run the real command line in a subprocess: what an admin types."""

    def run(*args, root=None, env=None, timeout=300):
        cmd = [sys.executable, "-m", "php_fpm_apparmor"]
        if root is not None:
            cmd += ["--root", str(root)]
        proc = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **(env or {})})
        return proc

    return run


needs_parser = pytest.mark.skipif(not shutil.which("apparmor_parser") and not os.path.exists("/sbin/apparmor_parser"),
                                  reason="apparmor_parser not installed")


@pytest.fixture(scope="session")
def debian_package(tmp_path_factory):
    """The package built once per run: (.deb, .changes, seconds). Used by the package tests
    and the booted-system tests."""
    import debbuild

    if shutil.which("dpkg-buildpackage") is None:
        pytest.skip("dpkg-buildpackage missing (apt-get install dpkg-dev debhelper)")
    try:
        deb, changes, seconds = debbuild.build(tmp_path_factory.mktemp("debbuild"))
    except debbuild.BuildDepsMissing as e:
        pytest.skip(f"build dependencies missing: {e}")
    print(f"dpkg-buildpackage: {seconds:.1f} s")
    return deb, changes, seconds


@pytest.fixture(scope="session")
def release_package(debian_package, tmp_path_factory):
    """release -> (.deb, .changes) built for that Debian release: the host build for the
    host's release, else a build inside a cached root of that release (tests/system)."""
    import debbuild
    from system import roots

    built = {roots.host_release(): debian_package[:2]}

    def get(release):
        if release not in built:
            built[release] = roots.build_deb(release, debbuild.REPO, debbuild.IGNORE,
                                             tmp_path_factory.mktemp(f"deb-{release}"))
        return built[release]

    return get


@pytest.fixture(scope="session")
def booted(request, release_package):
    """{(test module, release): Future of that booted scenario's run}. Every booted scenario
    this session selected starts at the first one's test, one qemu per core (TCG runs a
    guest on one host thread): on a two-core machine without KVM the stage takes half the
    wall time, which keeps CI inside its 90 minutes. The .debs are built first, one at a
    time (a release's builds share its cached root); each run then gets its image (built
    once per release, behind the image cache's lock) and boots it."""
    from concurrent.futures import ThreadPoolExecutor

    wanted = list(dict.fromkeys(  # (test module, release), in the order collected
        (item.module.__name__, item.callspec.params["release"]) for item in request.session.items
        if "booted" in getattr(item, "fixturenames", ()) and hasattr(item, "callspec")))
    modules = {name: sys.modules[name] for name, _ in wanted}
    debs = {}
    for name, release in wanted:
        if release not in debs:
            debs[release] = modules[name].package(release, release_package)
    # the releases in turn: the first two runs build (or load) both images side by side
    releases = list(dict.fromkeys(r for _, r in wanted))
    order = sorted(wanted, key=lambda w: ([x for x in wanted if x[1] == w[1]].index(w), releases.index(w[1])))
    with ThreadPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1))) as pool:
        yield {w: pool.submit(modules[w[0]].run, w[1], debs[w[1]]) for w in order}

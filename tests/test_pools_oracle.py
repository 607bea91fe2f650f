"""Differential tests: the real `php-fpmX.Y -tt` (8.2 on Debian 12, 8.4 on 13) and our reader must agree on every corpus config.

Each tests/fpm_corpus/*.txt case is a small system tree (files separated by `=== path`
lines, `@ROOT@` = the temporary root). php-fpm reads it through a wrapper that includes
the case's php-fpm.conf and silences the error log; our reader reads the same wrapper, so
both see identical absolute paths, the same prefix (-p) and the same php.ini (-c).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from php_fpm_apparmor.discover import Installation
from php_fpm_apparmor.errors import ConfigError
from php_fpm_apparmor.pools import POOL_OPTIONS, read_pools, time_seconds

from phpver import FPM, VERSION

CORPUS = Path(__file__).parent / "fpm_corpus"
needs_fpm = pytest.mark.skipif(not os.path.exists(FPM), reason=f"{FPM} not installed")
BASE_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}


# -- building a case ---------------------------------------------------------------------
def parse_case(text: str):
    meta, files, dirs = {}, {}, []
    current = None
    for line in text.split("\n"):
        if line.startswith("=== "):
            target = line[4:].strip()
            if target.startswith("dir:"):
                dirs.append(target[4:].strip())
                current = None
            else:
                current = target
                files[current] = []
        elif current is not None:
            files[current].append(line)
        elif line.startswith("# ") and ":" in line:
            key, _, value = line[2:].partition(":")
            meta[key.strip()] = value.strip()
    return meta, {k: "\n".join(v) for k, v in files.items()}, dirs


def materialize(text: str, root: Path):
    meta, files, dirs = parse_case(text)
    for d in dirs + ["usr", "var/log", "etc/php/8.2/fpm/conf.d"]:
        (root / d).mkdir(parents=True, exist_ok=True)
    for rel, body in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body.replace("@ROOT@", str(root)).encode("utf-8", "surrogateescape"))
    ini = root / "etc/php/8.2/fpm/php.ini"
    if not ini.exists():
        ini.write_text("")
    env = dict(BASE_ENV)
    for pair in meta.get("env", "").split():
        key, _, value = pair.partition("=")
        env[key] = value.replace("@ROOT@", str(root))
    return meta, env


def installation(root: Path) -> Installation:
    return Installation(
        version=VERSION, binary=FPM, config=str(root / "wrapper.conf"),
        php_ini=str(root / "etc/php/8.2/fpm/php.ini"), service="php8.2-fpm.service",
        prefix=str(root / "usr"),
    )


def write_wrapper(root: Path, main: str = "etc/php/8.2/fpm/php-fpm.conf"):
    # error_log=/dev/null: -tt appends to the configured log; log_limit: no truncation.
    (root / "wrapper.conf").write_text(
        f"include={root / main}\n[global]\nerror_log=/dev/null\nlog_limit=1048576\n")


# -- running the oracle -------------------------------------------------------------------
def run_fpm(root: Path, env: dict):
    cmd = [FPM, "-tt", "-p", str(root / "usr"), "-c", str(root / "etc/php/8.2/fpm/php.ini"),
           "-y", str(root / "wrapper.conf")]
    env = {**env, "PHP_INI_SCAN_DIR": str(root / "etc/php/8.2/fpm/conf.d")}
    proc = subprocess.run(cmd, capture_output=True, timeout=60, env=env)
    out = proc.stderr.decode("utf-8", "surrogateescape")
    return proc.returncode, out


_LINE = re.compile(r"^\[[^\]]*\] (NOTICE|WARNING|ERROR|ALERT): (.*)$")


def parse_dump(out: str):
    """[(pool name, {key: value}, {list name: [(key, value)]})] from -tt output."""
    pools, current = [], None
    for raw in out.split("\n"):
        m = _LINE.match(raw)
        if not m or m.group(1) != "NOTICE":
            continue
        text = m.group(2)
        if text.startswith("[") and text.endswith("]") and not text.startswith("\t"):
            name = text[1:-1]
            current = None if name == "global" else (name, {}, {"env": [], "php_value": [], "php_admin_value": []})
            if current:
                pools.append(current)
        elif current and text.startswith("\t"):
            key, _, value = text[1:].partition(" = ")
            arr = re.match(r"^(env|php_value|php_admin_value)\[(.*)\]$", key)
            if arr:
                current[2][arr.group(1)].append((arr.group(2), value))
            else:
                current[1][key] = value
    return pools


# What -tt prints for a directive we hold as a raw string (None = not set).
DEFAULTS = {
    "listen.backlog": "-1", "process.dumpable": "no", "pm.max_spawn_rate": "32",
    "pm.process_idle_timeout": "10", "request_slowlog_trace_depth": "20",
    "decorate_workers_output": "yes", "clear_env": "yes",
    "security.limit_extensions": ".php .phar", "process.priority": "undefined",
}


def dump_view(key: str, value: str | None) -> str | None:
    kind = POOL_OPTIONS[key]
    if value is None:
        if key in DEFAULTS:
            return DEFAULTS[key]
        return {"string": "undefined", "int": "0", "time": "0s", "bool": "no",
                "rlimit_core": "0"}.get(kind)
    if kind == "string":
        return value
    if kind == "int":
        m = re.match(r"-?[0-9]+", value)
        return str(int(m.group())) if m else "0"
    if kind == "time":
        return str(time_seconds(value)) + ("" if key == "pm.process_idle_timeout" else "s")
    if kind == "bool":
        return "yes" if value == "1" else "no"
    if kind == "pm":
        return value.lower()
    if kind == "rlimit_core":
        return "-1" if value.lower() == "unlimited" else str(int(value or 0))
    return value


# Printed values php-fpm derives itself (defaults computed from other settings).
DERIVED = {"pm.start_servers", "pm.min_spare_servers", "pm.max_spare_servers",
           "listen.backlog", "access.format", "ping.response", "pm.process_idle_timeout"}


def effective(pairs):
    out = {}
    for key, value in pairs:  # printed newest first: the last printed is the first in file
        out[key] = value
    return out


def compare(root: Path, env: dict):
    """Run both readers; return (fpm_ok, ours_ok, differences, fpm output, our error)."""
    rc, out = run_fpm(root, env)
    try:
        ours = read_pools(installation(root), "/", env)
        err = None
    except ConfigError as e:
        ours, err = None, e
    diffs = []
    if rc == 0 and ours is not None:
        dumped = parse_dump(out)
        if [p[0] for p in dumped] != [p.name for p in ours]:
            diffs.append(("pools", [p[0] for p in dumped], [p.name for p in ours]))
        for (name, scalars, lists), pool in zip(dumped, ours):
            for key, printed in scalars.items():
                if key not in POOL_OPTIONS or key in DERIVED:
                    continue
                mine = dump_view(key, pool.directives.get(key))
                if mine != printed:
                    diffs.append((name, key, printed, mine))
            for label, mine in (("env", pool.env), ("php_value", pool.php_values),
                                ("php_admin_value", pool.php_admin_values)):
                theirs = effective(lists[label])
                if theirs != mine:
                    diffs.append((name, label, theirs, mine))
    return rc == 0, ours is not None, diffs, out, err


CASES = sorted(CORPUS.glob("*.txt"))


def test_corpus_is_big_enough():
    assert len(CASES) >= 40


@needs_fpm
@pytest.mark.oracle
@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_corpus_case(case, tmp_path):
    meta, env = materialize(case.read_text(), tmp_path)
    write_wrapper(tmp_path)
    fpm_ok, ours_ok, diffs, out, err = compare(tmp_path, env)
    expect = meta.get(f"expect {VERSION}", meta.get("expect", "ok"))  # a version's own verdict
    assert fpm_ok == (expect == "ok"), f"php-fpm disagrees with the case's expectation:\n{out}"
    assert ours_ok == fpm_ok, f"php-fpm ok={fpm_ok}, we ok={ours_ok} ({err})\n{out}"
    assert not diffs, diffs
    if err is not None:
        # One line naming the file (and a line when there is one), never a traceback.
        text = str(err)
        assert "\n" not in text and err.file, text
        if meta.get("error"):
            assert meta["error"] in text, text
    if meta.get("hat") and ours_ok:
        hats = dict(pair.split("=", 1) for pair in meta["hat"].split())
        got = {p.name: p.hat for p in read_pools(installation(tmp_path), "/", env)}
        assert {k: got[k] for k in hats} == hats

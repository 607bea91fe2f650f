"""`learn` next to aa-logprof's log reader (python3-apparmor's ReadLog) on the same audit log.

Generates an auditd log in a temp dir (outside the repo, deleted afterwards): AVC records
of several php-fpm pools (DENIED and ALLOWED, file, network and exec), other profiles'
AVCs, the SYSCALL/PROCTITLE records auditd writes around them, and forged USER_AVC lines.
Then, each in a child process (CPU time and peak memory from wait4's rusage):
  learn    the real command: php-fpm-apparmor --root <demo tree> --json learn --log FILE
  ReadLog  apparmor.logparser.ReadLog(FILE, profiles, dir).read_log('') (Debian 12: 3.0)
`learn` runs on a slice of the log first (the first 1/8) and on the whole log, to show
that its memory does not grow with the log's size.
Goal (issue 12): learn >= 3x ReadLog's throughput, memory flat in the log's size. The ratio
is given on CPU time (the machine is shared: wall time varies with the neighbours) and wall.
Usage: .venv/bin/python bench/bench_learn.py [SIZE_MB]   (default 1024)
"""

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
POOLS = ("blog", "cloud", "plain", "web1")


def templates(rng: random.Random) -> list[str]:
    """Record lines with {t}, {s} (serial) and {p} (pid) left to fill: a bounded set of
    distinct needs (as on a real host: the same few thousand paths again and again)."""
    out = []
    for pool in POOLS:
        for i in range(3000):
            d = rng.choice(["wp-content/uploads/2026/%02d" % rng.randint(1, 12), "wp-content/cache",
                            "data/appdata/preview", "tmp", "assets/fonts"])
            ext = rng.choice(["png", "jpg", "css", "json", "ttf", "php", "txt"])
            root = f"/var/www/{pool}" if i % 5 else f"/srv/{pool}-shared"
            mask = rng.choice(["r", "r", "wc", "w", "rw", "k"])
            st = rng.choice(["DENIED", "DENIED", "ALLOWED"])
            out.append(f'type=AVC msg=audit({{t}}:{{s}}): apparmor="{st}" operation="open" '
                       f'profile="php-fpm//{pool}" name="{root}/{d}/f{i}.{ext}" pid={{p}} '
                       f'comm="php-fpm8.2" requested_mask="{mask}" denied_mask="{mask}" fsuid=33 ouid=33')
        out.append(f'type=AVC msg=audit({{t}}:{{s}}): apparmor="DENIED" operation="create" '
                   f'profile="php-fpm//{pool}" pid={{p}} comm="php-fpm8.2" family="inet6" '
                   f'sock_type="raw" protocol=58 requested_mask="create" denied_mask="create"')
        out.append(f'type=AVC msg=audit({{t}}:{{s}}): apparmor="DENIED" operation="exec" '
                   f'profile="php-fpm//{pool}" name="/usr/bin/convert" pid={{p}} comm="php-fpm8.2" '
                   f'requested_mask="x" denied_mask="x" fsuid=33 ouid=0')
    for prof in ("/usr/sbin/cupsd", "/usr/sbin/named", "lsb_release"):
        for i in range(200):
            out.append(f'type=AVC msg=audit({{t}}:{{s}}): apparmor="DENIED" operation="open" '
                       f'profile="{prof}" name="/etc/{prof.rsplit("/", 1)[-1]}/f{i}" pid={{p}} '
                       f'comm="x" requested_mask="r" denied_mask="r" fsuid=0 ouid=0')
    return out


COMPANIONS = [
    'type=SYSCALL msg=audit({t}:{s}): arch=c000003e syscall=257 success=no exit=-13 a0=ffffff9c '
    'a1=7ffd2c1e a2=0 a3=0 items=1 ppid=801 pid={p} auid=4294967295 uid=33 gid=33 euid=33 suid=33 '
    'fsuid=33 egid=33 sgid=33 fsgid=33 tty=(none) ses=4294967295 comm="php-fpm8.2" '
    'exe="/usr/sbin/php-fpm8.2" subj=php-fpm//blog key=(null)',
    'type=PROCTITLE msg=audit({t}:{s}): proctitle=7068702D66706D3A20706F6F6C20626C6F67',
    # forged: auditd's USER_AVC, which any process with the audit socket may send
    'type=USER_AVC msg=audit({t}:{s}): pid={p} uid=33 auid=4294967295 ses=4294967295 '
    'msg=\'apparmor="DENIED" operation="open" profile="php-fpm//blog" name="/etc/shadow" '
    'requested_mask="r" denied_mask="r"\'',
]


def generate(path: Path, size: int, rng: random.Random, serial: int = 0) -> int:
    """Append records to path until it holds `size` bytes; returns the next serial."""
    tpl = templates(rng)
    t0 = 1764400000.0 + serial / 50
    with open(path, "a") as f:
        written = path.stat().st_size if path.exists() else 0
        while written < size:
            lines = []
            for _ in range(5000):
                serial += 1
                r = rng.random()
                pick = rng.choice(tpl) if r < 0.7 else rng.choice(COMPANIONS)
                lines.append(pick.format(t=f"{t0 + serial / 50:.3f}", s=serial, p=rng.randint(100, 4_000_000)))
            block = "\n".join(lines) + "\n"
            f.write(block)
            written += len(block)
    return serial


def child(kind: str, log: str, tree: str) -> None:
    t = time.perf_counter()
    if kind == "learn":
        proc = subprocess.run([sys.executable, "-m", "php_fpm_apparmor", "--root", tree, "--json", "learn",
                               "--log", log], capture_output=True, text=True, check=True)
        out = json.loads(proc.stdout)
        summary = {"proposals": len(out["proposals"]), "refused": len(out["refused"]),
                   "already_allowed": out["already_allowed"]}
    else:
        from apparmor.logparser import ReadLog
        from apparmor.profile_list import ProfileList

        profiles = ProfileList()
        profiles.add_profile("/etc/apparmor.d/php-fpm", "php-fpm", "/usr/sbin/php-fpm*")
        hashlog = ReadLog(log, profiles, "/etc/apparmor.d").read_log("")
        summary = {mode: sum(len(v["path"]) for k, v in prof.items() if k.startswith("php-fpm"))
                   for mode, prof in hashlog.items()}
    print(json.dumps({"seconds": time.perf_counter() - t, "summary": summary}))


def measure(kind: str, log: Path, tree: Path) -> dict:
    """Run one reader in a child; its time, peak RSS (of it and, for learn, its CLI child)."""
    proc = subprocess.Popen([sys.executable, __file__, "--child", kind, str(log), str(tree)],
                            stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{kind} failed ({proc.returncode})")
    result = json.loads(out)
    # ru_maxrss of a waited child covers its own waited children: the learn CLI's peak too
    result["peak_mb"] = usage.ru_maxrss / 1024
    # CPU seconds (user + system, the CLI grandchild included): the machine is shared, so
    # wall time says as much about the neighbours as about the reader
    result["cpu"] = usage.ru_utime + usage.ru_stime
    return result


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return child(*sys.argv[2:5])
    size = int(float(sys.argv[1]) * (1 << 20)) if len(sys.argv) > 1 else 1 << 30
    rng = random.Random(12)
    tmp = Path(tempfile.mkdtemp(prefix="bench-learn-"))
    try:
        tree = tmp / "tree"
        shutil.copytree(REPO / "demo", tree, symlinks=True)
        subprocess.run([sys.executable, "-m", "php_fpm_apparmor", "--root", str(tree), "generate", "--quiet"],
                       check=True)
        log = tmp / "audit.log"
        t = time.perf_counter()
        serial = generate(log, size // 8, rng)
        small_size = log.stat().st_size
        small = measure("learn", log, tree)
        generate(log, size, rng, serial)
        gen_s = time.perf_counter() - t
        big_size = log.stat().st_size
        ours = measure("learn", log, tree)
        theirs = measure("readlog", log, tree)
        mb = big_size / (1 << 20)
        print(f"log: {mb:.0f} MiB, {sum(1 for _ in open(log, 'rb')):,} lines (generated in {gen_s:.0f} s)")
        print(f"learn (whole command):      {ours['cpu']:6.1f} s CPU ({ours['seconds']:6.1f} s wall)  "
              f"{mb / ours['cpu']:6.1f} MiB/s  peak {ours['peak_mb']:.0f} MiB  {ours['summary']}")
        print(f"ReadLog (python3-apparmor): {theirs['cpu']:6.1f} s CPU ({theirs['seconds']:6.1f} s wall)  "
              f"{mb / theirs['cpu']:6.1f} MiB/s  peak {theirs['peak_mb']:.0f} MiB  {theirs['summary']}")
        print(f"throughput ratio learn/ReadLog: {theirs['cpu'] / ours['cpu']:.2f}x on CPU time, "
              f"{theirs['seconds'] / ours['seconds']:.2f}x on wall time (goal >= 3x)")
        print(f"learn on {small_size / (1 << 20):.0f} MiB: {small['cpu']:.1f} s CPU, peak {small['peak_mb']:.0f} MiB; "
              f"on {mb:.0f} MiB: peak {ours['peak_mb']:.0f} MiB "
              f"(x{ours['peak_mb'] / small['peak_mb']:.2f} for x{big_size / small_size:.1f} the log)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

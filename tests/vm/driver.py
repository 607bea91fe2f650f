"""Boot Debian's AppArmor kernel under qemu and run a scenario's phases inside it.

API (stable, see README.md): Probe, Phase, Scenario, run(scenario, artefacts), available().
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import tempfile
import time
import urllib.parse
from dataclasses import asdict, dataclass, field

from . import initramfs, kernel

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = kernel.CACHE
BOOT_TIMEOUT = int(os.environ.get("PFA_VM_TIMEOUT", "180"))
SMP = os.environ.get("PFA_VM_SMP", "2")  # TCG runs one host thread per vCPU
OPS = ("read", "write", "exec", "mail", "list")
EACCES, EPERM = 13, 1


@dataclass
class Probe:
    """One operation a pool's PHP tries."""

    pool: str  # pool name (for reporting)
    socket: str  # system path of the pool's listen socket, e.g. /run/php/blog.sock
    script: str  # system path where the probe PHP is placed (inside the site root)
    op: str  # "read" | "write" | "exec" | "mail" | "list"
    target: str  # path, or for exec a JSON list argv ('["/bin/sh", "-c", "cwebp ..."]')
    expect: str  # "allow" | "deny"
    why: str = ""

    def __post_init__(self):
        if self.op not in OPS:
            raise ValueError(f"probe op {self.op!r} is not one of {OPS}")
        if self.expect not in ("allow", "deny"):
            raise ValueError(f"probe expect {self.expect!r} is not allow/deny")
        if self.op == "exec":
            argv = json.loads(self.target)
            if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
                raise ValueError(f"exec target must be a JSON list of strings: {self.target!r}")
        for p in (self.socket, self.script):
            if not p.startswith("/"):
                raise ValueError(f"probe path must be absolute: {p!r}")


@dataclass
class Phase:
    """One step inside a single boot: load/unload policy, (re)start php-fpm, probe."""

    name: str
    load: list[str] = field(default_factory=list)  # profiles to `apparmor_parser -r`, in order
    unload: list[str] = field(default_factory=list)  # files to `apparmor_parser -R`
    start_fpm: bool = True  # (re)start php-fpm after loading
    probes: list[Probe] = field(default_factory=list)
    shell: list[str] = field(default_factory=list)  # commands run (busybox sh) after the probes
    setup: list[str] = field(default_factory=list)  # commands run first, e.g. remove a pool


@dataclass
class Scenario:
    name: str
    tree: str  # a system tree dir already holding the policy under test
    # One conf, or several (e.g. two PHP versions): each started with the php-fpmX.Y that
    # its /etc/php/X.Y/ path names.
    fpm_conf: str | list[str] = "/etc/php/8.2/fpm/php-fpm.conf"
    phases: list[Phase] = field(default_factory=list)


_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$")


def _fpm_binary(conf: str) -> str:
    m = re.match(r"^/etc/php/(\d+\.\d+)/", conf)
    return f"/usr/sbin/php-fpm{m.group(1)}" if m else "/usr/sbin/php-fpm8.2"


def available() -> str | None:
    """None when run() can work on this machine, else why not (a pytest skip reason)."""
    if platform.machine() != "x86_64":
        return f"needs an x86_64 host, not {platform.machine()}"
    if os.geteuid() != 0:
        return "needs root (the initramfs keeps file owners)"
    for prog in ("qemu-system-x86_64", "cpio", "apt-get", "apt-cache", "dpkg-deb", "ldd"):
        if not shutil.which(prog):
            return f"{prog} is not installed"
    for path in ("/usr/bin/busybox", "/usr/sbin/apparmor_parser", "/usr/bin/cgi-fcgi",
                 "/usr/sbin/php-fpm8.2", "/usr/bin/dash"):
        if not os.path.exists(path):
            return f"{path} is missing"
    try:
        kernel.vmlinuz()
    except (kernel.KernelError, OSError, subprocess.SubprocessError) as e:
        return f"no AppArmor kernel: {e}"
    return None


def _kvm_works(vmlinuz: str) -> bool:
    """KVM only when a tiny boot really finishes (nested KVM can hang forever here)."""
    forced = os.environ.get("PFA_VM_ACCEL")
    if forced:
        return forced == "kvm"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    qemu = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True,
                          text=True).stdout.split("\n")[0]
    key = f"{platform.release()} {qemu} {os.path.basename(vmlinuz)}"
    memo = os.path.join(CACHE, "kvm-probe")
    if os.path.exists(memo):
        saved = open(memo).read().split("\n")
        if saved[0] == key:
            return saved[1] == "yes"
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "root")
        os.makedirs(os.path.join(root, "bin"))
        shutil.copy2("/usr/bin/busybox", os.path.join(root, "bin/busybox"))
        with open(os.path.join(root, "init"), "w") as f:
            f.write("#!/bin/busybox sh\n/bin/busybox echo KVM-PROBE-OK\n/bin/busybox poweroff -f\n")
        os.chmod(os.path.join(root, "init"), 0o755)
        initrd = os.path.join(tmp, "initrd")
        initramfs.pack(root, initrd)
        try:
            p = subprocess.run(
                ["qemu-system-x86_64", "-accel", "kvm", "-m", "256", "-nographic",
                 "-no-reboot", "-nic", "none", "-kernel", vmlinuz, "-initrd", initrd,
                 "-append", "console=ttyS0 rdinit=/init panic=-1 quiet"],
                stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
            ok = b"KVM-PROBE-OK" in p.stdout
        except subprocess.TimeoutExpired:
            ok = False
    with open(memo, "w") as f:
        f.write(f"{key}\n{'yes' if ok else 'no'}\n")
    return ok


def _q(s: str) -> str:
    return shlex.quote(s)


def _plan(scenario: Scenario) -> tuple[str, dict]:
    """The shell plan the VM's /init sources, and what each numeric id stands for."""
    confs = [scenario.fpm_conf] if isinstance(scenario.fpm_conf, str) else list(scenario.fpm_conf)
    ids: dict[int, tuple] = {}
    lines = []

    def new(kind, *info):
        ids[len(ids)] = (kind,) + info
        return len(ids) - 1

    # DAC must never be what stops a probe, or the test would prove nothing about
    # AppArmor: open every target (and its directories) to all users first.
    targets = set()
    for ph in scenario.phases:
        for pr in ph.probes:
            if pr.op in ("read", "write", "list"):
                targets.add(pr.target)
            targets.add(pr.script)
    for t in sorted(targets):
        lines.append(f"dac_open {_q(t)}")
    for n, ph in enumerate(scenario.phases):
        lines.append(f"phase {_q(ph.name)}")
        for cmd in ph.setup:
            lines.append(f"shell {new('setup', ph.name, cmd)} {_q(cmd)}")
        # Load before unload: the way a regeneration replaces the parent, then drops the
        # hats the new policy no longer defines.
        for path in ph.load:
            lines.append(f"load {new('load', ph.name, path)} {_q(path)}")
        for path in ph.unload:
            lines.append(f"unload {new('unload', ph.name, path)} {_q(path)}")
        if ph.start_fpm:
            # Wait for every socket probed until the next restart, not only this phase's.
            served = []
            for later in scenario.phases[n:]:
                if later is not ph and later.start_fpm:
                    break
                served += later.probes
            sockets = sorted({pr.socket for pr in served})
            lines.append(f"fpm_start {new('fpm', ph.name)} "
                         + " ".join(_q(f"{_fpm_binary(c)}={c}") for c in confs)
                         + " -- " + " ".join(_q(s) for s in sockets))
        for pr in ph.probes:
            query = urllib.parse.urlencode({"op": pr.op, "target": pr.target})
            lines.append(f"probe {new('probe', ph.name, pr)} {_q(pr.socket)} "
                         f"{_q(pr.script)} {_q(query)}")
        for cmd in ph.shell:
            lines.append(f"shell {new('shell', ph.name, cmd)} {_q(cmd)}")
        lines.append(f"phase_end {new('fpmlog', ph.name)}")
    return "\n".join(lines) + "\n", ids


_KV = re.compile(r'(\w+)=("(?:[^"]*)"|\S+)')
_HEX = re.compile(r"^(?:[0-9A-F]{2})+$")


def parse_audit(line: str) -> dict:
    """An `apparmor=` kernel line as a dict (quoted values unquoted, hex names decoded)."""
    rec = {}
    for k, v in _KV.findall(line[line.find("apparmor="):]):
        if v.startswith('"'):
            v = v[1:-1]
        elif k in ("name", "profile", "comm", "target", "peer") and _HEX.match(v):
            # The kernel hex-encodes values with spaces or special characters.
            v = bytes.fromhex(v).decode(errors="replace")
        rec[k] = v
    rec["raw"] = line
    return rec


def _passed(probe: Probe, res: dict) -> bool:
    if probe.expect == "allow":
        return res["ok"] is True
    if res["ok"] is not False:
        return False
    # A deny must be AppArmor's doing (EACCES/EPERM), not a missing file; mail() only
    # says false, and its kernel line is the evidence.
    return probe.op == "mail" or res["errno"] in (EACCES, EPERM)


@dataclass
class _Log:
    """What the console said, by numeric id (see _plan)."""

    outputs: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict)
    rcs: dict = field(default_factory=dict)
    labels: dict = field(default_factory=dict)
    audit: dict = field(default_factory=dict)  # phase -> [records]
    warnings: list = field(default_factory=list)
    booted: bool = False
    done: bool = False
    phase: str | None = None

    def feed(self, line: str):
        tag, _, rest = line.partition(" ")
        i, _, tail = rest.partition(" ")
        if tag == "BOOTED":
            self.booted = True
        elif tag == "DONE":
            self.done = True
        elif tag == "PHASE":
            self.phase = rest
        elif tag == "WARN":
            self.warnings.append(rest)
        elif tag == "O":
            self.outputs.setdefault(int(i), []).append(tail)
        elif tag == "RC":
            self.rcs[int(i)] = int(tail)
        elif tag == "RESULT":
            try:
                self.results[int(i)] = json.loads(tail)
            except ValueError:
                self.results[int(i)] = {"ok": None, "detail": "bad JSON: " + tail}
        elif tag == "LABEL":
            self.labels[int(i)] = tail.strip()
        elif tag == "NORESULT":
            self.results[int(i)] = {"ok": None,
                                    "detail": f"no answer from the pool (cgi-fcgi exit {tail})"}
        elif tag in ("NOSOCKET", "FPMDIED"):
            self.rcs[int(i)] = 1
            self.outputs.setdefault(int(i), []).append(f"{tag} {tail}")
        elif tag == "AUDIT":
            rec = parse_audit(rest)
            rec["phase"] = self.phase
            self.audit.setdefault(self.phase, []).append(rec)


def _parse(serial: str, ids: dict, scenario: Scenario) -> dict:
    log = _Log()
    for raw in serial.splitlines():
        at = raw.find("@@")
        if at >= 0:
            try:
                log.feed(raw[at + 2:].rstrip("\r"))
            except ValueError:  # garbled by kernel output on the same console
                log.warnings.append("unparsed line: " + raw)
    phases = {ph.name: {"name": ph.name, "results": [], "shell": {}, "commands": [],
                        "denials": log.audit.get(ph.name, []), "fpm_log": ""}
              for ph in scenario.phases}
    for i, info in ids.items():
        kind, ph = info[0], phases[info[1]]
        out = "\n".join(log.outputs.get(i, []))
        if kind == "probe":
            pr = info[2]
            got = log.results.get(i, {"ok": None, "detail": "probe never ran"})
            res = dict(asdict(pr), ok=got.get("ok"), errno=got.get("errno"),
                       detail=(got.get("detail", "") + "\n" + out).strip(),
                       label=log.labels.get(i, ""), uid=got.get("uid"), pid=got.get("pid"))
            res["passed"] = _passed(pr, res)
            # The kernel's lines about this probe's object (exec: the program).
            key = pr.target if pr.op != "exec" else json.loads(pr.target)[0]
            key = key.rstrip("/") or "/"  # directories are logged with a trailing slash
            res["audit"] = [d for d in ph["denials"]
                            if (d.get("name", "").rstrip("/") or "/") == key]
            ph["results"].append(res)
        elif kind == "fpmlog":
            ph["fpm_log"] = out
        else:
            entry = {"kind": kind, "what": info[2] if len(info) > 2 else kind,
                     "rc": log.rcs.get(i), "output": out}
            ph["commands"].append(entry)
            if kind == "shell":
                ph["shell"][entry["what"]] = entry
    for ph in phases.values():
        # php-fpm's worker exit code when aa_change_profile() fails (fpm_unix.c).
        if "exited with code 70" in ph["fpm_log"]:
            log.warnings.append(f"{ph['name']}: workers exit with code 70: their hat is "
                                "missing or the change to it was refused")
    denials = [d for ph in phases.values() for d in ph["denials"]]
    return {"phases": list(phases.values()), "denials": denials, "booted": log.booted,
            "completed": log.done, "warnings": log.warnings}


def run(scenario: Scenario, artefacts: str) -> dict:
    """Boot once, run the phases in order, return the structured results.

    Writes artefacts/<scenario>/serial.log, plan.sh and summary.json.
    """
    if not _SAFE_NAME.match(scenario.name):
        raise ValueError(f"scenario name {scenario.name!r} is not a safe directory name")
    if not os.path.isdir(scenario.tree):
        raise ValueError(f"scenario tree {scenario.tree} is not a directory")
    names = [ph.name for ph in scenario.phases]
    if len(set(names)) != len(names) or not all(_SAFE_NAME.match(n) for n in names):
        raise ValueError(f"phase names must be unique and simple: {names}")
    t0 = time.monotonic()
    outdir = os.path.join(artefacts, scenario.name)
    os.makedirs(outdir, exist_ok=True)
    vmlinuz = kernel.vmlinuz()
    base = initramfs.base_archive(CACHE)
    plan, ids = _plan(scenario)
    passwd, group, shadow = initramfs.accounts(scenario.tree, "/")
    files = {
        "/init": (open(os.path.join(HERE, "init.sh")).read(), 0o755),
        "/harness/plan.sh": (plan, 0o644),
        "/etc/passwd": (passwd, 0o644),
        "/etc/group": (group, 0o644),
        "/etc/shadow": (shadow, 0o640),
    }
    probe_php = open(os.path.join(HERE, "probe.php")).read()
    for ph in scenario.phases:
        for pr in ph.probes:
            files[pr.script] = (probe_php, 0o644)
    with open(os.path.join(outdir, "plan.sh"), "w") as f:
        f.write(plan)
    accel = "kvm" if _kvm_works(vmlinuz) else "tcg"
    with tempfile.TemporaryDirectory(prefix="pfa-vm-") as tmp:
        overlay = os.path.join(tmp, "overlay.cpio")
        initramfs.overlay_archive(scenario.tree, files, overlay, os.path.join(tmp, "stage"))
        initrd = os.path.join(tmp, "initrd")
        with open(initrd, "wb") as out:
            for part in (base, overlay):
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 20)
        t_boot = time.monotonic()
        serial_path = os.path.join(outdir, "serial.log")
        cmd = ["qemu-system-x86_64", "-accel", accel, "-m", "1024", "-smp", SMP,
               "-nographic", "-no-reboot", "-nic", "none",
               "-kernel", vmlinuz, "-initrd", initrd, "-append",
               "console=ttyS0 apparmor=1 security=apparmor rdinit=/init panic=-1 "
               "loglevel=1 audit_backlog_limit=8192 log_buf_len=8M"]
        timed_out = False
        with open(serial_path, "wb") as serial:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=serial,
                                    stderr=subprocess.STDOUT)
            try:
                proc.wait(timeout=BOOT_TIMEOUT)
            except subprocess.TimeoutExpired:
                timed_out = True
                proc.kill()
                proc.wait()
        boot_seconds = time.monotonic() - t_boot
    text = open(serial_path, "rb").read().decode("utf-8", errors="replace")
    summary = _parse(text, ids, scenario)
    summary.update(scenario=scenario.name, accel=accel, timed_out=timed_out,
                   boot_seconds=round(boot_seconds, 2),
                   seconds=round(time.monotonic() - t0, 2), qemu_exit=proc.returncode)
    with open(os.path.join(outdir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1, default=str)
    return summary

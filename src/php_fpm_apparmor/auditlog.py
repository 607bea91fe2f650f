"""Reading the kernel's AppArmor records for php-fpm's profiles, streamed, aggregated.

Sources: auditd's log and kern.log with their rotated files (`.1`, `.2.gz`, oldest first),
and the kernel's journal (`journalctl -k`). /var/log/syslog is left out: any process can
write a line there that looks like a record (logger, PHP's syslog()).

Speed and memory: files are read in large binary chunks and one anchored regex finds the
kernel's record forms in C; per record Python only updates a counter keyed by the record's
text without its volatile fields (time, serial, pid). So memory grows with the number of
distinct records (paths), not with the log's size, and each distinct record is parsed
once, by python3-libapparmor (the same parser aa-logprof uses).
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import LibAppArmor

LOGS = ("/var/log/audit/audit.log", "/var/log/kern.log")
JOURNAL = "journalctl -k"
CHUNK = 8 << 20
# Distinct records kept: a script that opens millions of made-up names must not make the
# reader's memory follow; records beyond it are counted, not kept (and said).
MAX_DISTINCT = 500_000

# The kernel's record forms, anchored at a line start: auditd ("type=AVC msg=audit(...)"),
# the kernel ring buffer as dmesg, kern.log or `journalctl -k -o short-iso` show it
# ("... kernel: [  1.2] audit: type=1400 audit(...)"). auditd's USER_AVC lines (any process
# may send them) and anything else do not match. Only DENIED and ALLOWED (complain) records
# of php-fpm's hats and children; the pid is cut out of the aggregation key.
_RECORD = re.compile(
    rb'^(?:type=(?:AVC|1400) msg=|(?:[A-Z][a-z]{2} +\d+ [\d:]+ \S+ kernel: |\d{4}-\d\d-\d\dT\S+ \S+ kernel: )?'
    rb'(?:\[ *\d+\.\d+\] )?audit: type=1400 )audit\((\d+\.\d+):\d+\): (apparmor="(?:DENIED|ALLOWED)"[^\n]*)', re.M)
_OURS = b' profile="php-fpm//'
_ROTATED = re.compile(r"\.(\d+)(\.gz)?$")


@dataclass(frozen=True)
class Event:
    status: str  # DENIED or ALLOWED (complain mode)
    operation: str
    profile: str
    name: str
    requested: str
    family: str = ""
    sock_type: str = ""
    # the process's and the file's owner (None: not logged); not part of what makes two
    # records one need (the pid-less key already differs in them)
    fsuid: int | None = field(default=None, compare=False)
    ouid: int | None = field(default=None, compare=False)

    @property
    def foreign(self) -> bool:
        """The file is another user's: neither root's nor the process's own."""
        return self.ouid is not None and self.ouid not in (0, self.fsuid)


@dataclass
class Seen:
    """One distinct event and how often, first and last (epoch seconds) it was logged."""

    event: Event
    count: int
    first: float
    last: float


def parse_payload(payload: str) -> Event | None:
    """The record's fields (after "audit(...): ") -> Event, parsed by python3-libapparmor."""
    rec = LibAppArmor.parse_record(f"type=AVC msg=audit(0.000:0): {payload}")
    try:
        if not rec or not rec.profile or rec.event not in (LibAppArmor.AA_RECORD_DENIED,
                                                            LibAppArmor.AA_RECORD_ALLOWED):
            return None
        status = "DENIED" if rec.event == LibAppArmor.AA_RECORD_DENIED else "ALLOWED"
        return Event(status, rec.operation or "", rec.profile, rec.name or "", rec.requested_mask or "",
                     rec.net_family or "", rec.net_sock_type or "", _uid(rec.fsuid), _uid(rec.ouid))
    finally:
        if rec:
            LibAppArmor.free_record(rec)


def _uid(value) -> int | None:
    return value if isinstance(value, int) and 0 <= value < 2**32 - 1 else None  # libapparmor: -1 unset


_LINE = re.compile(r'^(?:type=(?:AVC|1400) msg=|(?:\S+ +\d+ [\d:]+ \S+ kernel: |\S+T\S+ \S+ kernel: )?'
                   r'(?:\[ *\d+\.\d+\] )?audit: type=1400 )audit\((\d+\.\d+:\d+)\): *(apparmor=.*)$')


def parse_line(line: str) -> Event | None:
    """One log line in a kernel record form (any profile) -> Event; None for anything else."""
    m = _LINE.match(line.rstrip("\n"))
    return parse_payload(m.group(2)) if m else None


class Counter:
    """Aggregates records: {payload without pid: [count, first ts, last ts]} (bytes)."""

    def __init__(self, since: float | None = None):
        self.keys: dict = {}
        self.since = f"{since:014.3f}".encode() if since else b""
        self.span = None  # (first, last) record time fed since the caller reset it (bytes)
        self.dropped = 0  # records of distinct needs beyond MAX_DISTINCT

    def feed(self, data: bytes, skip=None) -> None:
        keys, since = self.keys, self.since
        lo, hi = self.span or (None, None)
        for m in _RECORD.finditer(data):
            ts, payload = m.groups()
            # epoch seconds have 10 digits until 2286: bytes compare as numbers
            if ts < since or _OURS not in payload or (skip and skip[0] <= ts <= skip[1]):
                continue
            # the pid differs in every record of one need: not part of the key
            i = payload.find(b" pid=")
            if i > 0:
                j = payload.find(b" ", i + 5)
                key = payload[:i] + payload[j:] if j > 0 else payload[:i]
            else:
                key = payload
            s = keys.get(key)
            if s is None:
                if len(keys) >= MAX_DISTINCT:
                    self.dropped += 1
                    continue
                keys[key] = [1, ts, ts]
            else:
                s[0] += 1
                if ts > s[2]:
                    s[2] = ts
                elif ts < s[1]:
                    s[1] = ts
            if hi is None or ts > hi:
                hi = ts
            if lo is None or ts < lo:
                lo = ts
        self.span = (lo, hi) if lo is not None else None

    def feed_stream(self, f, skip=None) -> None:
        rest = b""
        while True:
            block = f.read(CHUNK)
            if not block:
                break
            block = rest + block
            cut = block.rfind(b"\n") + 1
            rest = block[cut:]
            self.feed(block[:cut], skip)
        if rest:
            self.feed(rest, skip)

    def seen(self) -> list[Seen]:
        """Merged per (profile, status, operation, name, mask, net): the pid-less key still
        differs in comm, fsuid, ouid; one Seen per event is what a proposal counts."""
        out: dict[Event, Seen] = {}
        for key, (count, first, last) in self.keys.items():
            ev = parse_payload(key.decode("utf-8", "replace"))
            if ev is None:
                continue
            s = out.get(ev)
            if s is None:
                out[ev] = Seen(ev, count, float(first), float(last))
            else:
                s.count += count
                s.first = min(s.first, float(first))
                s.last = max(s.last, float(last))
                if ev.foreign and not s.event.foreign:  # one record of another user's file is enough
                    s.event = ev
        return list(out.values())


def rotated(path: Path) -> list[Path]:
    """path's rotations, oldest first, then path: kern.log.3.gz, kern.log.2.gz, kern.log.1, kern.log."""
    try:
        names = [p for p in path.parent.iterdir() if p.name.startswith(path.name + ".")]
    except OSError:
        names = []
    rot = []
    for p in names:
        m = _ROTATED.match(p.name[len(path.name):])
        if m:
            rot.append((int(m.group(1)), p))
    return [p for _, p in sorted(rot, reverse=True)] + [path]


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


_AUDIT_TIME = re.compile(rb"audit\((\d+\.\d+):")
_ISO_TIME = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)")
_SYSLOG_TIME = re.compile(rb"^([A-Z][a-z]{2} +\d+ \d\d:\d\d:\d\d) ")


def first_time(path: Path) -> float | None:
    """When a log file begins: its first line's time (auditd's audit(EPOCH:...), an ISO or
    a traditional syslog stamp, whose year is the file's or the one before; a UTC offset is
    ignored: hours, against a period of days). None if the first line tells nothing; then
    the file does not count as reaching back."""
    try:
        with _open(path) as f:
            line = f.readline(65536)
        mtime = path.stat().st_mtime
    except (OSError, EOFError, gzip.BadGzipFile):
        return None
    m = _AUDIT_TIME.search(line)
    if m:
        return float(m.group(1))
    m = _ISO_TIME.match(line)
    if m:
        return time.mktime(time.strptime(m.group(1).decode(), "%Y-%m-%dT%H:%M:%S"))
    m = _SYSLOG_TIME.match(line)
    if m:
        year = time.localtime(mtime).tm_year
        for y in (year, year - 1):  # a stamp after the file's last write is last year's
            try:
                t = time.mktime(time.strptime(f"{y} {m.group(1).decode()}", "%Y %b %d %H:%M:%S"))
            except ValueError:
                continue
            if t <= mtime + 86400:
                return t
    return None


def boot_time() -> float:
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return time.time() - time.monotonic()


def parse_since(value: str | None) -> float | None:
    """'boot', an epoch, 'YYYY-MM-DD[ HH:MM[:SS]]', or 'Nd'/'Nh' ago -> epoch seconds."""
    if not value:
        return None
    v = value.strip()
    if v == "boot":
        return boot_time()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([dhm])", v)
    if m:
        return time.time() - float(m.group(1)) * {"d": 86400, "h": 3600, "m": 60}[m.group(2)]
    if re.fullmatch(r"\d{9,}(\.\d+)?", v):
        return float(v)
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        try:
            return time.mktime(time.strptime(v, fmt))
        except ValueError:
            continue
    raise ValueError(f"--since {value!r}: not a time (YYYY-MM-DD[ HH:MM[:SS]], an epoch, 7d, 12h or boot)")


def _journal(counter: Counter, since: float | None, skip, limit: int | None = None) -> bool:
    """Stream `journalctl -k` into counter. `-k` is the kernel transport: no user process can
    add to it. limit: only the newest N lines (status). False if there is no journal."""
    exe = shutil.which("journalctl")
    if not exe:
        return False
    cmd = [exe, "-k", "-o", "short-iso", "--no-pager", "-q"]
    if limit:
        cmd += ["-n", str(limit)]
    if since:
        cmd += ["--since", f"@{int(since)}"]
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except OSError:
        return False
    with proc:
        counter.feed_stream(proc.stdout, skip)
    return proc.returncode == 0


def read(sysroot: str = "/", logs=None, since: float | None = None, journal: bool | None = None,
         tail: int | None = None) -> tuple[Counter, list[str]]:
    """Read the sources into one Counter; returns it and what was read (for messages).

    logs: explicit files (read as given), else LOGS below sysroot with their rotations.
    journal: the kernel's journal too (default: on the live system without explicit logs);
    its records inside the span kern.log already covered are copies and are skipped.
    tail: read only the last `tail` bytes of each current file and the journal's newest
    lines (a bounded look for `status`); rotations are then left out.
    """
    counter = Counter(since)
    counter.reaches = None  # the earliest time the sources read cover (None: unknown)
    read_from = []
    if logs:
        files = [Path(p) for p in logs]
    else:
        files = []
        for base in LOGS:
            p = Path(sysroot, base.lstrip("/"))
            files += [p] if tail else rotated(p)
    kern_span = None

    def reaches(when):
        if when is not None and (counter.reaches is None or when < counter.reaches):
            counter.reaches = when

    for path in files:
        try:
            mtime = path.stat().st_mtime
            if since and not tail and mtime < since:
                reaches(mtime)  # it was written before `since`: the source goes back that far
                continue  # nothing written to it since then
            if not tail:
                reaches(first_time(path))
            with _open(path) as f:
                if tail:
                    size = f.seek(0, os.SEEK_END)
                    f.seek(max(0, size - tail))
                    if size > tail:
                        f.readline()  # a partial first line
                counter.span = None
                counter.feed_stream(f)
            if "kern.log" in path.name and counter.span:
                lo, hi = counter.span
                kern_span = (min(kern_span[0], lo), max(kern_span[1], hi)) if kern_span else (lo, hi)
            read_from.append(str(path))
        except (FileNotFoundError, NotADirectoryError):
            continue
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            read_from.append(f"{path} (unreadable: {exc})")
    if journal is None:
        journal = not logs and sysroot in ("/", "")
    if journal and _journal(counter, since, kern_span, limit=20000 if tail else None):
        read_from.append(JOURNAL)
        reaches(boot_time())  # `journalctl -k`: this boot's kernel messages
    if counter.dropped:
        read_from.append(f"({counter.dropped} records of more than {MAX_DISTINCT} distinct needs not kept: "
                         f"narrow it with --since or --pool)")
    return counter, read_from

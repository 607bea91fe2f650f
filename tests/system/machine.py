"""Boot a cached image (through a qcow2 overlay) with a payload disk; read the results back.

The payload disk is an ext4 image built with `mke2fs -d` from a host directory holding
`run` (executed by the guest's pfa-payload.service after multi-user.target, once per boot)
and whatever it needs. The guest writes /payload/results/; after qemu exits the host copies
them out with `debugfs rdump`: no loop mounts, no root beyond the host's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .image import Image, in_use

TIMEOUT = int(os.environ.get("PFA_SYSTEM_TIMEOUT", "2400"))  # whole run, all boots
MEMORY = os.environ.get("PFA_SYSTEM_MEMORY", "2048")
APPEND = ("root=/dev/vda rw console=ttyS0 apparmor=1 security=apparmor "
          "module_blacklist=qemu_fw_cfg systemd.show_status=1 panic=-1")


@dataclass
class Boot:
    returncode: int | None  # None: killed by the host-side timeout
    seconds: float
    serial: Path
    results: Path


def payload_disk(src: Path, img: Path, size: str = "1G"):
    res = subprocess.run(["mke2fs", "-q", "-t", "ext4", "-L", "payload", "-d", str(src), "-F",
                          str(img), size], capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(f"mke2fs payload: {res.stderr}")


def read_results(img: Path, dest: Path):
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["debugfs", "-R", f"rdump /results {dest}", str(img)],
                   capture_output=True, text=True)


def _guest_file(img: Path, path: str) -> str:
    res = subprocess.run(["debugfs", "-R", f"cat {path}", str(img)], capture_output=True,
                         text=True)
    return res.stdout if res.returncode == 0 else ""


def boot(image: Image, payload: Path, workdir: Path, overlay: bool = True,
         timeout: int = TIMEOUT, max_boots: int = 3) -> Boot:
    """Boot `image` with the files of `payload` on the second disk until the guest writes
    /payload/results/done and powers off. qemu runs with -no-reboot: a guest `systemctl
    reboot` ends qemu after a clean shutdown and the host starts it again on the same disks
    (a kernel panic also ends qemu, but without `done`)."""
    with in_use(image):  # from the overlay's creation on: its base must stay
        return _boot(image, payload, workdir, overlay, timeout, max_boots)


def _boot(image, payload, workdir, overlay, timeout, max_boots) -> Boot:
    workdir.mkdir(parents=True, exist_ok=True)
    disk = image.disk
    if overlay:
        disk = workdir / "root.qcow2"
        disk.unlink(missing_ok=True)
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image.disk),
                        "-F", "raw", str(disk)], check=True)
    pimg = workdir / "payload.img"
    payload_disk(payload, pimg)
    serial = workdir / "serial.log"
    serial.unlink(missing_ok=True)
    rc, seconds = _boots(image, disk, pimg, workdir, serial, overlay, timeout, max_boots)
    results = workdir / "results"
    shutil.rmtree(results, ignore_errors=True)
    read_results(pimg, workdir)
    if overlay:
        disk.unlink(missing_ok=True)  # GBs of guest writes; the results are copied out
    pimg.unlink(missing_ok=True)
    return Boot(rc, seconds, serial, results)


def _boots(image, disk, pimg, workdir, serial, overlay, timeout, max_boots):
    start = time.monotonic()
    rc = None
    for n in range(max_boots):
        part = workdir / f"serial.{n}.log"
        cmd = ["qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-m", MEMORY, "-smp", "1",
               "-nographic", "-nic", "none", "-no-user-config", "-nodefaults", "-no-reboot",
               "-serial", f"file:{part}", "-monitor", "none",
               "-kernel", str(image.vmlinuz), "-initrd", str(image.initrd), "-append", APPEND,
               "-drive", f"file={disk},if=virtio,format={'qcow2' if overlay else 'raw'},"
                         "cache=unsafe",
               "-drive", f"file={pimg},if=virtio,format=raw,cache=unsafe"]
        left = timeout - (time.monotonic() - start)
        try:
            rc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, timeout=max(left, 1)).returncode
        except subprocess.TimeoutExpired:
            rc = None
        with open(serial, "ab") as out:
            out.write(f"\n===== boot {n} (qemu exit {rc}) =====\n".encode())
            out.write(part.read_bytes() if part.exists() else b"")
        part.unlink(missing_ok=True)
        if rc is None or _guest_file(pimg, "/results/done") or \
                not _guest_file(pimg, "/results/reboot"):
            break
    return rc, time.monotonic() - start


def warm(image: Image, workdir: Path):
    """First boot of a fresh image, written into base.img itself: AppArmor's cache filled."""
    payload = workdir / "payload"
    payload.mkdir(parents=True, exist_ok=True)
    (payload / "results").mkdir(exist_ok=True)
    run = payload / "run"
    run.write_text("#!/bin/sh\n"
                   "systemctl is-system-running --wait > /payload/results/state 2>&1\n"
                   "uname -r > /payload/results/uname\n"
                   "touch /payload/results/done; sync; systemctl poweroff\n")
    run.chmod(0o755)
    b = boot(image, payload, workdir, overlay=False, timeout=1800)
    if b.returncode is None or not (b.results / "uname").exists():
        raise RuntimeError(f"warm boot of {image.dir} failed, see {b.serial}")
    return b

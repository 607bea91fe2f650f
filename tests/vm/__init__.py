"""Real-kernel test harness: boot Debian's AppArmor kernel in qemu, probe the pools."""

from .driver import Phase, Probe, Scenario, available, parse_audit, run

__all__ = ["Phase", "Probe", "Scenario", "available", "parse_audit", "run"]

"""Build (or find) the cached images: `cd tests && python -m system build trixie bookworm`."""

import sys
import time
from pathlib import Path

from . import image, machine

if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "build":
        sys.exit("usage: python -m system build RELEASE...")
    for name in sys.argv[2:]:
        start = time.monotonic()
        img = image.get(name, machine.warm)
        print(f"{name}: {img.dir} (build {img.build_seconds:.0f} s, warm boot "
              f"{img.warm_seconds:.0f} s, total {time.monotonic() - start:.0f} s)")

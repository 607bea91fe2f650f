"""The PHP-FPM the tests run against: the newest /usr/sbin/php-fpmX.Y installed (8.2 on
Debian 12, 8.4 on Debian 13), so the oracle tests run on either release."""

import glob
import re

_found = sorted((tuple(int(x) for x in m.groups()), m.group(0))
                for m in (re.search(r"(\d+)\.(\d+)$", p) for p in glob.glob("/usr/sbin/php-fpm[0-9]*.[0-9]*"))
                if m)
VERSION = f"{_found[-1][0][0]}.{_found[-1][0][1]}" if _found else "8.2"
FPM = f"/usr/sbin/php-fpm{VERSION}"
PACKAGE = f"php{VERSION}-fpm"

"""Step 3: find the web applications each site serves, by asking the app plugins."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class App:
    name: str  # plugin-defined id, e.g. "wordpress"
    root: str  # canonical system path the app lives in
    version: str | None = None
    plugin: str = ""  # name of the plugin that detected it
    info: dict = field(default_factory=dict)  # plugin facts (wp-config path, datadirectory...)


# Detection repeats while plugins keep finding new apps (add-ons wait for their host app);
# the bound stops a plugin that invents a new app every round.
MAX_ROUNDS = 4


def detect(site, plugins) -> list[App]:
    found: list[App] = []
    seen = set()
    for _ in range(MAX_ROUNDS):
        new = []
        for app in plugins.call("php_fpm_apparmor_detect", site=site, found=list(found)):
            key = (app.name, app.root)
            if key not in seen:
                seen.add(key)
                new.append(app)
        if not new:
            break
        found.extend(new)
    return sorted(found, key=lambda a: (a.root, a.name))

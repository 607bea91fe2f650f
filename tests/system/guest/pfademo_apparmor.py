"""A third-party app plugin as another Debian package would ship it (system tests).

It detects a site holding `pfademo.marker` and lets that pool write files (never PHP, the
generator refuses that) in `<root>/pfademo-cache/`: a rule the guest can see work.
"""

from php_fpm_apparmor.apps import App
from php_fpm_apparmor.hookspecs import hookimpl
from php_fpm_apparmor.policy import FileRule, under


@hookimpl
def php_fpm_apparmor_detect(site, found):
    return [App("pfademo", root, plugin="pfademo") for root in site.roots
            if site.disk(root, "pfademo.marker").is_file()]


@hookimpl
def php_fpm_apparmor_rules(site, app):
    if app.name != "pfademo":
        return []
    return [FileRule(path=under(app.root, "/pfademo-cache/*.txt"), perms="rw", owner=True,
                     source="pfademo", why="the demo app's cache files")]

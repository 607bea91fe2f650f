"""The public plugin API of php-fpm-apparmor: the one module an app plugin imports from.

    from php_fpm_apparmor.api import App, FileRule, hookimpl, under

Everything listed in ``__all__`` is the API; every other module of the package is private
and may change in any release. docs/plugin-guide.md documents each name and each hook
(php_fpm_apparmor.hookspecs holds the hook signatures).

Compatibility rule (API_VERSION = "MAJOR.MINOR"):
- MINOR grows when names, hooks, optional hook arguments or optional dataclass fields are
  added: a plugin written for 1.N works unchanged with every 1.M, M >= N.
- MAJOR grows when anything in ``__all__`` is removed or changes meaning, or a hook's
  arguments or expected return change. Plugins check ``API_VERSION.split(".")[0]``.
- The Debian package provides ``php-fpm-apparmor-api-MAJOR``: a packaged plugin
  ``Depends: php-fpm-apparmor (>= 0.1), php-fpm-apparmor-api-1`` and is never installed
  next to an API it does not know.
"""

from __future__ import annotations

from .apphelpers import (UNKNOWN, NotRegular, PhpFacts, any_case, canonical_or_none, clean_version, ext_glob,
                         find_binaries, is_within, open_regular, plugin_header, pool_names, read_php, site_ini,
                         temp_dir, unsafe_path)
from .apps import App
from .expect import Expectation
from .hookspecs import hookimpl
from .policy import (CODE_EXTENSIONS, CODE_FILES, HAT, MASTER, CapabilityRule, DataDir, ExecRule, FileRule,
                     IncludeRule, NetworkRule, PtraceRule, Rule, SignalRule, WriteException, lit, never_code,
                     under)
from .sites import Site
from .whose import named_path

API_VERSION = "1.5"  # 1.1: DataDir, CODE_EXTENSIONS, CODE_FILES, never_code(); 1.2: open_regular();
# 1.3: named_path(), PhpFacts.uid, .gid and .mode; 1.4: Site.entry(); 1.5: a detect hook
# without `found` is asked once per site

__all__ = [
    "API_VERSION",
    # hooks and the data they get and return
    "hookimpl", "Site", "App", "Expectation",
    # rules (policy.py): the only way to ask for a permission
    "Rule", "FileRule", "ExecRule", "NetworkRule", "CapabilityRule", "SignalRule", "PtraceRule",
    "IncludeRule", "WriteException", "DataDir", "CODE_EXTENSIONS", "CODE_FILES", "HAT", "MASTER",
    # building paths
    "lit", "under", "never_code", "any_case", "ext_glob", "unsafe_path", "named_path", "is_within",
    "canonical_or_none",
    "find_binaries", "temp_dir", "site_ini", "pool_names",
    # reading an app's files without running them
    "read_php", "PhpFacts", "UNKNOWN", "plugin_header", "clean_version", "open_regular", "NotRegular",
]

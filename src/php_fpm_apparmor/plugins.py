"""Loading app plugins: first-party, third-party and local ones, through one interface.

Where plugins come from:
- the ``php_fpm_apparmor`` entry-point group (first-party plugins register there too);
- ``.py`` files in /etc/php-fpm-apparmor/plugins.d/ (root-owned, not group/world-writable).

The boundary is strict, because a plugin's mistake must cost one pool, never all of them
and never silently: a plugin that fails to import, or has a misspelled hook or a missing
``@hookimpl``, is refused and reported by name (`plugins` exits 1); a hook that raises or
returns a wrong value is a `PluginError`, which makes that pool fail with the plugin named.
PHP_FPM_APPARMOR_NO_EXTERNAL_PLUGINS=1 loads only the plugins of this distribution.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import difflib
import importlib.util
import os
import pickle
import re
import signal
import stat
import sys
import threading
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pluggy

from . import PROJECT, hookspecs
from .errors import PluginError

FIRST_PARTY = "php_fpm_apparmor_plugins"
FIRST_PARTY_DIST = "php-fpm-apparmor"  # the distribution whose entry points are first party
NO_EXTERNAL_ENV = "PHP_FPM_APPARMOR_NO_EXTERNAL_PLUGINS"
GUARD_ENV = "PHP_FPM_APPARMOR_GUARD_ALL_PLUGINS"  # "1": copy for first-party plugins too (tests)
LOCAL_DIR = "/etc/php-fpm-apparmor/plugins.d"
HOOK_PREFIX = "php_fpm_apparmor_"
PLUGIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
RESERVED_NAMES = frozenset({"core", "config"})  # the provenance of the core's and the admin's rules
HOOKS = tuple(sorted(n for n in vars(hookspecs) if n.startswith(HOOK_PREFIX)))
# A plugin that hangs must not hang `generate` (php-fpm's ExecStartPre waits for it, and
# systemd gives php-fpm 90 s to start): an import or one hook call taking longer is that
# plugin's (or pool's) failure. Detection must take milliseconds; these bounds only catch
# a hang or a network call. A plugin that ran out of time MAX_TIMEOUTS times in a run is
# not called again in it: one that hangs on every pool (a dead licence server) costs two
# limits, not one per pool (a thousand pools x 10 s kept php-fpm from ever starting).
IMPORT_SECONDS = 20.0
HOOK_SECONDS = 10.0
MAX_TIMEOUTS = 2


class PluginTimeout(BaseException):
    """Not an Exception: a plugin's own `except Exception` must not swallow it."""


class Deadline:
    """Raises PluginTimeout inside a plugin's code once an armed period runs out (main
    thread only, where SIGALRM is delivered; elsewhere no limit). The handler and the
    stdout redirection are set up once for a whole hook call or run (set up per
    implementation, they cost more than a WordPress host's hooks themselves). Arming and
    disarming only note the time: one timer runs behind them, started by the first arm and,
    when it rings, set again for the end of the period armed then, or stopped when none is
    (two system calls per implementation were still 60,000 per thousand pools). So a run
    of quick hooks gets no signal at all, one of many a signal per period at most.
    Stdout goes to stderr meanwhile: ours is the tool's output (--json)."""

    def __init__(self, seconds: float, what: str):
        self.seconds, self.what = seconds, what
        self.usable = False
        self.until = None  # monotonic end of the armed period; None: disarmed

    def __enter__(self):
        usable = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
        # someone else's timer is running: leave it alone
        self.usable = usable and not signal.getitimer(signal.ITIMER_REAL)[0]
        if self.usable:
            self.old = signal.signal(signal.SIGALRM, self._rang)
        self.redirect = contextlib.redirect_stdout(sys.stderr)
        self.redirect.__enter__()
        return self

    def _rang(self, signum, frame):
        until = self.until
        if until is None:  # between implementations: the timer stays off until the next arm
            _TIMER.on = False
            return
        left = until - time.monotonic()
        if left > 0:  # a later implementation's period: ring again at its end
            signal.setitimer(signal.ITIMER_REAL, left)
            return
        self.until = None
        _TIMER.on = False
        raise PluginTimeout(f"{self.what} took longer than {self.seconds:g} s")

    def arm(self) -> None:
        if self.usable:
            self.until = time.monotonic() + self.seconds
            if not _TIMER.on:
                _TIMER.on = True
                signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def disarm(self) -> None:
        self.until = None

    def __exit__(self, *exc):
        self.until = None
        self.redirect.__exit__(*exc)
        if self.usable:
            signal.setitimer(signal.ITIMER_REAL, 0)
            _TIMER.on = False
            signal.signal(signal.SIGALRM, self.old)
        return False


class _Timer:
    on = False  # our timer is set in this process


_TIMER = _Timer()
# A forked copy (status shares detection with copies) starts with no timer: its first
# arm sets one.
os.register_at_fork(after_in_child=lambda: setattr(_TIMER, "on", False))


@contextlib.contextmanager
def time_limit(seconds: float, what: str):
    """One period of `seconds` for the code in the with-block (see Deadline)."""
    with Deadline(seconds, what) as deadline:
        deadline.arm()
        yield


@dataclass
class PluginInfo:
    name: str
    version: str
    source: str  # "first-party", "local" (plugins.d), "extra" (tests) or the distribution
    module: str


@dataclass
class Plugins:
    pm: pluggy.PluginManager
    info: list[PluginInfo] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # plugins refused at load time
    trace: list | None = None  # [(hook, plugin, pool object, app name, [items])] when tracing
    # The copies handed out, by the original's id, with the original kept alive (ids stay
    # unique): a pool's Site is copied once for all its hooks, not once per call (a deep
    # copy per call was half of the planning time on a WordPress host).
    _copies: dict = field(default_factory=dict, repr=False)
    trusted: set = field(default_factory=set)  # names of this distribution's plugins (not copied for)
    timeouts: dict = field(default_factory=dict)  # plugin name -> hook calls of it that ran out of time
    _session: Deadline | None = field(default=None, repr=False)  # see session()

    @contextlib.contextmanager
    def session(self):
        """Many hook calls (a plan's) under one Deadline set-up: the SIGALRM handler and the
        stdout redirection are installed once, and each implementation is still armed with
        its own HOOK_SECONDS. Set up per hook call, they were a twentieth of planning."""
        if self._session is not None:
            yield
            return
        with Deadline(HOOK_SECONDS, "the call") as deadline:
            self._session = deadline
            try:
                yield
            finally:
                self._session = None

    def _deadline(self):
        """The run's own Deadline when a session is open (its timer may be set, and a second
        Deadline would then leave it alone: no limit), else one for this hook call."""
        return contextlib.nullcontext(self._session) if self._session else Deadline(HOOK_SECONDS, "the call")

    def _copy(self, value):
        hit = self._copies.get(id(value))
        # still equal: nothing (a result the core kept and changed) touched it since
        if hit is not None and hit[0] is value and hit[1] == value:
            return hit[1]
        if len(self._copies) >= 16:  # a few pools' worth: plans go pool by pool
            self._copies.clear()
        try:  # a pickle round trip deep-copies these plain dataclasses 3x faster than deepcopy
            made = _copied(value)
        except Exception:  # something only deepcopy can copy (a plugin's own object in App.info)
            made = copy.deepcopy(value)
        self._copies[id(value)] = (value, made)
        return made

    def call(self, hook: str, with_names: bool = False, needs: str | None = None, **kwargs) -> list:
        """Call every implementation of `hook` and flatten their lists.

        A hook that raises, or returns anything but a list/tuple (or None), is a
        `PluginError` naming the plugin: the caller's pool fails, nothing is half-applied.
        With `with_names`, items come as (plugin name, item) so provenance cannot be faked.
        `needs`: only the implementations that take this argument (pluggy hands each one
        only the arguments it names, so one without it cannot depend on it).
        """
        impls = getattr(self.pm.hook, hook).get_hookimpls()
        if needs:
            impls = [i for i in impls if needs in i.argnames]
        if not impls:
            return []
        # Plugins get a copy of what they look at: one that changes it (a root added, the
        # hat renamed, another plugin's App.info) fails this pool, named, and the core keeps
        # working on the originals. Compared once per call, not after each plugin (that
        # was an eighth of the planning time); when a copy changed, the plugins run again
        # one at a time to name the one that did it. This distribution's own plugins get
        # the originals (copying for them was most of `status`'s plugin time): the test
        # suite guards them too (GUARD_ENV), so a change of theirs fails a test.
        guarded = [i for i in impls if i.plugin_name not in self.trusted]
        handed = {key: self._copy(value) for key, value in kwargs.items()} if guarded else kwargs
        out, traced = [], []
        try:
            with self._deadline() as deadline:
                for impl in impls:
                    result = self._one(deadline, hook, impl, kwargs if impl.plugin_name in self.trusted else handed)
                    if self.trace is not None:
                        site, app = kwargs.get("site"), kwargs.get("app")
                        traced.append((hook, impl.plugin_name, getattr(site, "pool", None),
                                       getattr(app, "name", None), list(result)))
                    out.extend((impl.plugin_name, item) if with_names else item for item in result)
        except PluginError:
            if guarded and _changed(kwargs, handed):  # the change is the first fault: name its plugin
                self._blame(hook, guarded, kwargs)
            self._copies.clear()  # it may have changed a copy before raising
            raise
        if guarded and _changed(kwargs, handed):
            self._blame(hook, guarded, kwargs)
        if self.trace is not None:
            self.trace.extend(traced)
        return out

    def _one(self, deadline, hook, impl, handed) -> list | tuple:
        """One implementation's checked result."""
        name = impl.plugin_name
        if self.timeouts and self.timeouts.get(name, 0) >= MAX_TIMEOUTS:
            raise PluginError(name, hook, f"ran out of time ({HOOK_SECONDS:g} s) {MAX_TIMEOUTS} times earlier in "
                                          f"this run: not called again until the next run")
        try:
            deadline.arm()
            try:
                result = impl.function(*[handed[a] for a in impl.argnames])
            finally:
                deadline.disarm()
        except (Exception, SystemExit, PluginTimeout) as exc:  # a third party's bug: this pool's failure, named
            if isinstance(exc, PluginTimeout):
                self.timeouts[name] = self.timeouts.get(name, 0) + 1
            raise PluginError(name, hook, f"raised {one_line(repr(exc))}") from exc
        if result is None:
            return []
        if not isinstance(result, (list, tuple)):
            raise PluginError(name, hook,
                              f"returned {short(result)} ({type(result).__name__}), not a list")
        return result

    def _blame(self, hook, impls, kwargs):
        """Raise the PluginError naming the plugin that changed its arguments: the hooks run
        again on fresh copies, compared after each."""
        self._copies.clear()
        handed = {key: self._copy(value) for key, value in kwargs.items()}
        with self._deadline() as deadline:
            for impl in impls:
                try:
                    self._one(deadline, hook, impl, handed)
                except PluginError:
                    pass  # its fault is reported below if it also changed something
                changed = _changed(kwargs, handed)
                if changed:
                    self._copies.clear()
                    raise PluginError(impl.plugin_name, hook, f"changed {changed}: a hook must not "
                                      f"modify its arguments (return what you need instead)")
        self._copies.clear()
        names = ", ".join(i.plugin_name for i in impls)
        raise PluginError(f"one of {names}", hook, "changed its arguments on the first run but not on a "
                          "second: a hook must not modify its arguments")


class ReadOnlyDict(dict):
    """A dict a hook may read, copy or pickle (the copy is a plain dict) but not change."""

    def _refuse(self, *args, **kwargs):
        raise TypeError("read-only: php.ini's settings are every pool's; return what you need instead")

    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self):
        return (dict, (dict(self),))


def _copied(value):
    """A deep copy by a pickle round trip, except what every pool shares and no hook may
    change: the installation (frozen) and its php.ini settings, handed out read-only (half
    of a Site's size; a plugin writing to them raises, which fails its pool, named)."""
    pool = getattr(value, "pool", None)
    if not dataclasses.is_dataclass(value) or not isinstance(getattr(pool, "php_ini", None), dict):
        return pickle.loads(pickle.dumps(value, pickle.HIGHEST_PROTOCOL))
    light = copy.copy(value)  # shallow: the originals stay as they are
    light.pool = copy.copy(pool)
    light.pool.php_ini, light.pool.installation = {}, None
    made = pickle.loads(pickle.dumps(light, pickle.HIGHEST_PROTOCOL))
    made.pool.php_ini, made.pool.installation = ReadOnlyDict(pool.php_ini), pool.installation
    return made


def _changed(originals: dict, handed: dict) -> str | None:
    """The first argument (or dataclass field of it) a plugin modified, e.g. "site.roots"."""
    for key, value in originals.items():
        if handed[key] == value:
            continue
        names = [f.name for f in dataclasses.fields(value)] if dataclasses.is_dataclass(value) else []
        for name in names:
            if getattr(handed[key], name, None) != getattr(value, name):
                return f"{key}.{name}"
        return key
    return None


def one_line(text: str, limit: int = 300) -> str:
    """A value a plugin handed us, fit for one line of a message (escaped, bounded)."""
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return text if len(text) <= limit else text[:limit] + "..."


def _version(module, fallback: str) -> str:
    """A plugin's __version__ fit for one column of `plugins`, whatever it set (a module
    __getattr__ or a __str__ that raises included)."""
    try:
        value = getattr(module, "__version__", None)
        return one_line(str(value), 40) if value not in (None, "") else fallback
    except Exception:
        return "?"


def short(value) -> str:
    return one_line(repr(value))


def external_disabled(environ=None) -> bool:
    env = os.environ if environ is None else environ
    return env.get(NO_EXTERNAL_ENV, "").strip().lower() in ("1", "yes", "true", "on")


def _raw_dist_name(dist) -> str:
    if dist is None:
        return ""
    return getattr(dist, "name", None) or dist.metadata.get("Name", "") or ""


def _dist_name(dist) -> str:
    return re.sub(r"[-_.]+", "-", _raw_dist_name(dist)).lower()


def is_first_party(ep, dist_name: str | None = None) -> bool:
    """Shipped by this distribution and naming one of its modules: another package's entry
    point that names a first-party module is still that package's plugin (external).
    dist_name: _dist_name(ep.dist) if already known (each ask parses the package's METADATA)."""
    if dist_name is None:
        dist_name = _dist_name(getattr(ep, "dist", None))
    return dist_name == FIRST_PARTY_DIST and (ep.value == FIRST_PARTY or ep.value.startswith(FIRST_PARTY + "."))


def mistakes(pm: pluggy.PluginManager, plugin) -> list[str]:
    """Hook-looking names pluggy would silently ignore: misspelled hooks, missing @hookimpl."""
    out = []
    for attr in sorted(dir(plugin)):
        if not attr.startswith(HOOK_PREFIX) or not callable(getattr(plugin, attr, None)):
            continue
        marked = pm.parse_hookimpl_opts(plugin, attr) is not None
        if attr in HOOKS:
            if not marked:
                out.append(f"{attr} has no @hookimpl (from php_fpm_apparmor.api), so it is never called")
        else:  # pluggy's check_pending would say "unknown hook" without the near miss
            near = difflib.get_close_matches(attr, HOOKS, n=1)
            out.append(f"{attr} is not a hook" + (f" (did you mean {near[0]}?)" if near else "")
                       + f"; the hooks are {', '.join(HOOKS)}")
    return out


def _register(plugins: Plugins, obj, name: str, where: str) -> bool:
    """Register one plugin; on any mistake take it out again and say why, by name."""
    pm = plugins.pm
    # A plugin's name is the provenance its rules carry in the hat's comments, which the
    # checks read: it may not pass for the core's or the admin's own ("core", "config").
    if name in RESERVED_NAMES or not PLUGIN_NAME.match(name):
        plugins.problems.append(f"plugin {one_line(name)} ({where}) refused: a plugin is named like "
                                f"{PLUGIN_NAME.pattern}, and not {' or '.join(sorted(RESERVED_NAMES))}")
        return False
    try:
        pm.register(obj, name=name)
    except (pluggy.PluginValidationError, ValueError) as exc:
        if pm.get_plugin(name) is obj:  # pluggy keeps a half-registered plugin around
            try:
                pm.unregister(name=name)
            except Exception:
                pass
        plugins.problems.append(f"plugin {name} ({where}) refused: {one_line(str(exc))}")
        return False
    found = mistakes(pm, obj)
    try:
        if not found:  # other names marked @hookimpl that no spec knows (pluggy 1.0 API)
            pm.check_pending()
    except pluggy.PluginValidationError as exc:
        found.append(one_line(str(exc)))
    if found:
        pm.unregister(name=name)
        plugins.problems.append(f"plugin {name} ({where}) refused: " + "; ".join(found))
        return False
    return True


def local_files(sysroot: str) -> tuple[list[Path], list[str]]:
    """(the loadable .py files of plugins.d, problems): anyone but root able to write one
    of them, or the directory, could run code as root, so those are refused."""
    d = Path(sysroot, LOCAL_DIR.lstrip("/"))
    problems: list[str] = []
    try:
        st = d.lstat()
    except FileNotFoundError:
        return [], []
    except OSError as exc:
        return [], [f"{d}: {exc.strerror}"]

    def unsafe(path: Path, st) -> str | None:
        if stat.S_ISLNK(st.st_mode):
            return "is a symlink"
        if st.st_uid != 0:
            return f"is owned by uid {st.st_uid}, not root"
        if st.st_mode & 0o022:
            return f"is group- or world-writable (mode {stat.S_IMODE(st.st_mode):04o})"
        return None

    why = unsafe(d, st) if stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode) else "is not a directory"
    if why:
        return [], [f"{d} {why}: no local plugin loaded from it"]
    # Whoever may write a parent (/etc/php-fpm-apparmor, /etc) may swap plugins.d itself.
    for parent in Path(LOCAL_DIR).parents:
        if str(parent) == "/":
            break
        p = Path(sysroot, str(parent).lstrip("/"))
        why = unsafe(p, p.lstat())
        if why:
            return [], [f"{p} {why}: no local plugin loaded from {d}"]
    files = []
    for p in sorted(d.iterdir()):
        if p.suffix != ".py" or p.name.startswith("."):
            continue
        why = unsafe(p, p.lstat()) or (None if p.is_file() else "is not a regular file")
        if not why and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", p.stem):
            why = "is not named like a Python module"
        if why:
            problems.append(f"plugin {p.stem} ({p}) refused: {p} {why}")
        else:
            files.append(p)
    return files, problems


def _load_local(plugins: Plugins, sysroot: str, taken: set) -> None:
    files, problems = local_files(sysroot)
    plugins.problems.extend(problems)
    for path in files:
        name = path.stem
        if name in taken:
            plugins.problems.append(f"plugin {name} ({path}) refused: an installed plugin has that name")
            continue
        modname = f"php_fpm_apparmor_local.{name}"
        try:
            spec = importlib.util.spec_from_file_location(modname, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[modname] = module  # dataclasses and typing look modules up by name
            with time_limit(IMPORT_SECONDS, "the import"):
                spec.loader.exec_module(module)
        except (Exception, SystemExit, PluginTimeout) as exc:
            sys.modules.pop(modname, None)
            plugins.problems.append(f"plugin {name} ({path}) failed to load: {one_line(repr(exc))}")
            continue
        if _register(plugins, module, name, str(path)):
            plugins.info.append(PluginInfo(name, _version(module, "-"), "local", str(path)))


def load(entry_points=None, extra=(), sysroot: str | None = None, external: bool | None = None) -> Plugins:
    """The plugin manager: the entry-point group, plugins.d below `sysroot` (when given),
    and `extra` objects (tests). `external=False` (or the environment switch) keeps only
    this distribution's own plugins."""
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    plugins = Plugins(pm)
    if external is None:
        external = not external_disabled()
    if entry_points is None:
        entry_points = metadata.entry_points(group=PROJECT)
    for ep in sorted(entry_points, key=lambda e: e.name):
        # The distribution's name and version parse its METADATA on every ask (Python 3.11
        # keeps no copy): once each here, and the version only when the module has none.
        dist = getattr(ep, "dist", None)
        shown = _raw_dist_name(dist)
        first_party = is_first_party(ep, re.sub(r"[-_.]+", "-", shown).lower())
        if not first_party and not external:
            continue
        where = ep.value + (f" from {shown}" if shown else "")
        try:
            with time_limit(IMPORT_SECONDS, "the import"):
                module = ep.load()
        except (Exception, SystemExit, PluginTimeout) as exc:  # sys.exit() at import must not end the run
            plugins.problems.append(f"plugin {ep.name} ({where}) failed to load: {one_line(repr(exc))}")
            continue
        if not _register(plugins, module, ep.name, where):
            continue
        if first_party and os.environ.get(GUARD_ENV) != "1":
            plugins.trusted.add(ep.name)
        plugins.info.append(PluginInfo(
            name=ep.name,
            version=_version(module, "") or (str(dist.version) if dist else "?"),
            source="first-party" if first_party else (shown or "external"),
            module=ep.value,
        ))
    if sysroot is not None and external:
        _load_local(plugins, sysroot, {i.name for i in plugins.info})
    for module in extra:
        name = getattr(module, "__name__", repr(module)).rsplit(".", 1)[-1]
        if _register(plugins, module, name, "extra"):
            plugins.info.append(PluginInfo(name, _version(module, "?"), "extra", name))
    return plugins


def report(plugins: Plugins, stream=sys.stderr) -> None:
    for line in plugins.problems:
        print(f"php-fpm-apparmor: warning: {line}", file=stream)

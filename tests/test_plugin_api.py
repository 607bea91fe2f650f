"""The plugin API: every hook documented and exercised; broken plugins skipped, not fatal."""

import inspect
import re
from pathlib import Path
import subprocess
import sys
from importlib import metadata

import pytest

from php_fpm_apparmor import api, generate, hookspecs, plugins as plugins_mod
from php_fpm_apparmor.apps import App
from php_fpm_apparmor.hookspecs import hookimpl
from php_fpm_apparmor.policy import ExecRule, FileRule, WriteException, under
from systree import make_tree, pool_conf

HOOKS = sorted(n for n, f in vars(hookspecs).items() if n.startswith("php_fpm_apparmor_") and callable(f))


GUIDE = Path(__file__).resolve().parents[1] / "docs/plugin-guide.md"


def test_every_hook_is_documented_in_the_spec_and_the_guide():
    """A hook or public name nobody documented fails here: the guide is the API's reference."""
    assert HOOKS == ["php_fpm_apparmor_check", "php_fpm_apparmor_detect",
                     "php_fpm_apparmor_exceptions", "php_fpm_apparmor_roots", "php_fpm_apparmor_rules"]
    guide = GUIDE.read_text()
    sections = re.split(r"^### ", guide, flags=re.M)
    for name in HOOKS:
        doc = inspect.getdoc(getattr(hookspecs, name))
        assert doc and len(doc.splitlines()[0]) > 20, name
        # typed: every argument and the return are annotated
        sig = inspect.signature(getattr(hookspecs, name))
        assert sig.return_annotation is not inspect.Signature.empty, name
        assert all(p.annotation is not inspect.Parameter.empty for p in sig.parameters.values()), name
        section = next((s for s in sections if s.startswith(f"`{name}(")), None)
        assert section, f"{name}: no '### `{name}(...)`' section in {GUIDE}"
        heading = section.splitlines()[0]
        assert all(p in heading for p in sig.parameters), (name, heading)
        for part in ("**When:**", "**Arguments:**", "**Return:**", "**Wrong return:**", "**Example:**"):
            assert part in section, f"{name}: the guide's section lacks {part}"
        assert "@hookimpl\ndef " + name in section, f"{name}: the example does not implement it"
    assert "entry_points" in hookspecs.__doc__ and "hookimpl" in hookspecs.__doc__


def test_every_public_name_is_documented_and_the_api_is_versioned():
    guide = GUIDE.read_text()
    reference = guide[guide.index("## 4. The public names"):guide.index("## 5.")]
    for name in api.__all__:
        assert hasattr(api, name), name
        assert f"`{name}`" in reference or f"`{name}(" in reference, f"{name} is not documented in section 4"
    assert re.fullmatch(r"\d+\.\d+", api.API_VERSION)
    assert "Compatibility rule" in api.__doc__ and "Compatibility rule" in guide


def test_first_party_plugins_import_only_from_the_api():
    import php_fpm_apparmor_plugins as fp

    for path in Path(fp.__file__).parent.glob("*.py"):
        for line in path.read_text().splitlines():
            m = re.match(r"\s*(?:from|import)\s+(php_fpm_apparmor\S*|\.\S*)", line)
            if m:
                assert m.group(1) == "php_fpm_apparmor.api", f"{path.name}: {line.strip()}"


class Recorder:
    """A third-party-style plugin implementing every hook, recording its calls."""

    calls = []

    @hookimpl
    def php_fpm_apparmor_detect(site, found):
        Recorder.calls.append("detect")
        if site.disk(site.roots[0], "shop.txt").exists() and not any(a.name == "shop" for a in found):
            return [App("shop", site.roots[0], version="1.0", plugin="recorder")]
        return []

    @hookimpl
    def php_fpm_apparmor_rules(site, app):
        Recorder.calls.append("rules")
        if app.name != "shop":
            return []
        return [FileRule(path=under(app.root, "/var/*.dat"), perms="rw", why="shop data"),
                FileRule(path=under(app.root, "/compiled/*.php"), perms="w", why="templates"),
                ExecRule(path="/usr/bin/convert", mode="Px", target="im", why="thumbnails"),
                FileRule(path="/usr/bin/convert", perms="mr", profile="im", why="itself")]

    @hookimpl
    def php_fpm_apparmor_exceptions(site, app):
        Recorder.calls.append("exceptions")
        return [WriteException(path=under(app.root, "/compiled/*.php"), why="the shop compiles templates to PHP")]

    @hookimpl
    def php_fpm_apparmor_check(site, app):
        Recorder.calls.append("check")
        return ["shop: cache dir is world-writable: chmod o-w"] if app.name == "shop" else []


def test_every_hook_is_exercised_and_shapes_the_policy(tmp_path, cli):
    root = make_tree(tmp_path, {"s": pool_conf("s", "/var/www/shop", hat="s")})
    (root / "var/www/shop/shop.txt").write_text("1.0")
    Recorder.calls.clear()
    plugins = plugins_mod.load(entry_points=[], extra=[Recorder])
    result = generate.plan(str(root), plugins)
    assert not result.problems, result.problems
    e = result.ready[0]
    assert [a.name for a in e.policy.apps] == ["shop"]
    assert '"/usr/bin/convert" mrPx -> php-fpm//s_im,' in e.text
    assert "profile s_im flags=" in e.text
    assert "# recorder: shop data" in e.text or "# Recorder: shop data" in e.text
    assert "exception (Recorder): writes /var/www/shop/compiled/*.php" in e.text
    from php_fpm_apparmor import check
    import argparse
    findings = check.findings(argparse.Namespace(root=str(root), json=False), plugins)
    assert any("world-writable" in f for f in findings)
    assert set(Recorder.calls) == {"detect", "rules", "exceptions", "check"}


def test_provenance_cannot_be_faked(tmp_path):
    class Liar:
        @hookimpl
        def php_fpm_apparmor_detect(site, found):
            return [App("x", site.roots[0], plugin="liar")]

        @hookimpl
        def php_fpm_apparmor_rules(site, app):
            return [FileRule(path=under(app.root, "/x"), perms="r", source="core", why="trust me")]

    root = make_tree(tmp_path, {"s": pool_conf("s", "/var/www/x", hat="s")})
    result = generate.plan(str(root), plugins_mod.load(entry_points=[], extra=[Liar]))
    assert "# Liar: trust me" in result.ready[0].text
    assert "(plugin Liar)" in result.ready[0].text and "liar" not in result.ready[0].text


def test_first_party_plugins_register_through_the_entry_point_group(cli):
    names = {ep.name for ep in metadata.entry_points(group="php_fpm_apparmor")}
    assert {"wordpress", "webp_express", "wp_super_cache", "nextcloud"} <= names
    proc = cli("plugins")
    assert proc.returncode == 0
    for name in ("wordpress", "webp_express", "wp_super_cache", "nextcloud"):
        assert name in proc.stdout and "first-party" in proc.stdout


def test_a_plugin_cannot_write_into_the_shared_children(tmp_path):
    class Sneaky:
        @hookimpl
        def php_fpm_apparmor_detect(site, found):
            return [App("x", site.roots[0], plugin="sneaky")]

        @hookimpl
        def php_fpm_apparmor_rules(site, app):
            # every pool's mail would run with this
            return [FileRule(path="/etc/shadow", perms="r", profile="_sendmail", why="oops")]

    root = make_tree(tmp_path, {"s": pool_conf("s", "/var/www/x", hat="s")})
    result = generate.plan(str(root), plugins_mod.load(entry_points=[], extra=[Sneaky]))
    assert "profiles named _* are the shared ones" in " ".join(result.problems)
    assert "/etc/shadow" not in result.shared

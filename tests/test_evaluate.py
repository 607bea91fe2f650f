"""evaluate.py against the python3-apparmor installed here (3.0 on Debian 12, 4.1 on 13):
rules are read with whichever constructor the library has, and a library that fails is an
error naming the call, never a rule silently left unchecked."""

import pytest

from php_fpm_apparmor import evaluate
from php_fpm_apparmor.errors import LibraryError


def test_the_rule_debian13_could_not_evaluate():
    # postinst on Debian 13 printed: pool shop: cannot evaluate rule: "/run/php/shop.sock" rwkl,
    prof = evaluate.parse('^shop {\n  "/run/php/shop.sock" rwkl,\n  deny /run/php/shop.sock.bak w,\n}\n')["php-fpm//shop"]
    assert [evaluate.allows(prof, op, "/run/php/shop.sock") for op in ("read", "write", "lock", "link")] == [True] * 4
    assert not evaluate.allows(prof, "mmap", "/run/php/shop.sock")
    assert not evaluate.allows(prof, "write", "/run/php/shop.sock.bak")
    assert not evaluate.allows(prof, "read", "/run/php/other.sock")


def test_a_rule_the_library_refuses_is_named():
    with pytest.raises(ValueError, match=r'cannot evaluate rule: /srv/x rwz,'):
        evaluate.parse("^a {\n  /srv/x rwz,\n}\n")


def test_leading_alternation_gives_the_same_rules_on_both_releases():
    # @{etc_ro} expands to {/etc/,/usr/etc/}: 3.0 refused such a path, 4.1 reads it.
    rules = evaluate._file_rule("{/etc/,/usr/etc/}/gcrypt/{random.conf,hwf.deny} r,")
    assert sorted(r.path.regex for r in rules) == ["/etc/gcrypt/{random.conf,hwf.deny}",
                                                   "/usr/etc/gcrypt/{random.conf,hwf.deny}"]
    (quoted,) = [evaluate._file_rule('owner "{/a b/,/c/}x" r,')]
    assert sorted(r.path.regex for r in quoted) == ["/a b/x", "/c/x"] and all(r.owner for r in quoted)


def test_stock_base_abstraction_is_read_whole():
    # abstractions/base reads the loader cache through @{etc_ro} on Debian 12 and 13.
    prof = evaluate.Profile("p", rules=list(evaluate.abstraction("abstractions/base")))
    if not prof.rules:
        pytest.skip("no /etc/apparmor.d/abstractions/base here")
    assert evaluate.allows(prof, "mmap", "/etc/ld.so.cache")
    assert not evaluate.allows(prof, "write", "/etc/ld.so.cache")


def test_a_library_without_either_constructor_is_an_error(monkeypatch):
    class Bare:
        ALL = object()
    monkeypatch.setattr(evaluate, "AAFileRule", Bare)
    with pytest.raises(LibraryError, match=r"FileRule has neither create_instance\(\) \(4.x\) nor parse\(\) \(3.x\)"):
        evaluate.new_file_rule("/x r,")


def test_a_failing_library_call_names_itself(monkeypatch):
    class Broken:
        @classmethod
        def create_instance(cls, text):
            raise AttributeError("'FileRule' object has no attribute 'perms'")
    monkeypatch.setattr(evaluate, "AAFileRule", Broken)
    with pytest.raises(LibraryError) as exc:
        evaluate.new_file_rule('"/run/php/shop.sock" rwkl,')
    assert "FileRule.create_instance('\"/run/php/shop.sock\" rwkl,') failed: AttributeError" in str(exc.value)


def test_a_failing_matcher_names_itself(monkeypatch):
    class Broken:
        def __init__(self, regex, is_path):
            pass

        def match(self, path):
            raise TypeError("match() takes 1 positional argument")
    evaluate._aare.cache_clear()
    monkeypatch.setattr(evaluate, "AARE", Broken)
    try:
        with pytest.raises(LibraryError, match=r"AARE\('/srv/\*\*'\)\.match\('/srv/x'\) failed: TypeError"):
            evaluate.matches("/srv/**", "/srv/x")
    finally:
        evaluate._aare.cache_clear()


def test_matcher_on_this_release():
    # escaped specials are literal, globs are globs (python3-apparmor 3.0 and 4.1 alike)
    assert evaluate.matches("/srv/a\\*b/**", "/srv/a*b/c") and not evaluate.matches("/srv/a\\*b/**", "/srv/axb/c")
    assert evaluate.matches("/srv/{x,y}/*.php", "/srv/y/i.php") and not evaluate.matches("/srv/{x,y}/*.php", "/srv/y/d/i.php")


def test_an_abstraction_rule_nobody_can_read_is_named(tmp_path):
    (tmp_path / "tunables").mkdir()
    (tmp_path / "tunables/global").write_text("@{run}=/run /var/run\n")
    (tmp_path / "abstractions").mkdir()
    (tmp_path / "abstractions/x").write_text("# fine\n@{run}/x r,\n/srv/y rwz,\n")
    with pytest.raises(ValueError, match=r"abstractions/x:3: cannot evaluate rule: /srv/y rwz,"):
        evaluate.abstraction("abstractions/x", str(tmp_path))
    (tmp_path / "abstractions/z").write_text("@{nosuch}/x r,\n")
    with pytest.raises(ValueError, match=r"abstractions/z:1: .*@\{nosuch\} is not defined"):
        evaluate.abstraction("abstractions/z", str(tmp_path))

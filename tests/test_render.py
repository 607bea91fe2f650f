"""render: nothing a rule carries can end its quotes, start a comment or include elsewhere."""

import pytest

from php_fpm_apparmor import render
from php_fpm_apparmor.policy import ExecRule, FileRule, IncludeRule, SignalRule, lit


@pytest.mark.parametrize("path", ['/x\\', '/x"', '/a"/b', "/x\n/etc/shadow r"])
def test_quote_refuses_what_would_break_out(path):
    with pytest.raises(ValueError):
        render.rule_text(FileRule(path=path, perms="r"))


@pytest.mark.parametrize("raw", ['/a"b', "/a\\b", "/a b,#c", "/a{b,c}*?[x]^@{HOME}"])
def test_lit_paths_always_render(raw):
    text = render.rule_text(FileRule(path=lit(raw), perms="r"))
    assert text.startswith('"') and text.endswith('" r,') and text.count("\n") == 0


@pytest.mark.parametrize("name", ["abstractions/../../var/www/x", "a b", "x>", "../x"])
def test_include_names_are_plain(name):
    with pytest.raises(ValueError):
        render.rule_text(IncludeRule(name=name))


def test_peer_and_signal_words_are_checked():
    with pytest.raises(ValueError):
        render.rule_text(SignalRule(signals=("term",), peer="php-fpm, /** rw"))
    with pytest.raises(ValueError):
        render.rule_text(SignalRule(signals=("term) peer=unconfined",), peer="php-fpm"))


def test_exec_modes_are_limited():
    for mode in ("ux", "Ux", "pux", "PUx", "px"):
        with pytest.raises(ValueError):
            ExecRule(path="/bin/x", mode=mode, target="t")

"""Property test: generated configs are read identically by php-fpmX.Y -tt and by us.

Hypothesis writes pool trees with odd quoting, booleans, comments, ${VAR} references
(php.ini first, then environment), includes, pools split across files with differently
cased names, and junk; php-fpm and our reader must both accept with equal values, or
both refuse.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_pools_oracle import compare, materialize, needs_fpm, write_wrapper

WORD = "abcxyz0189/._-:@%+,#*?"
QUOTED = WORD + " ;'=!|&~()$\\{}"
ENV = {"V1": "/from/env", "V2": "two words", "memory_limit": "env-shadowed"}
PHP_INI = 'memory_limit = 96M\ninivar = "from ini"\nflag = On\n'

word = st.text(alphabet=WORD, min_size=1, max_size=6)
varref = st.builds(lambda n, sp: "${" + sp + n + sp + "}",
                   st.sampled_from(["V1", "V2", "memory_limit", "inivar", "flag", "UNSET"]),
                   st.sampled_from(["", " "]))
dquoted = st.builds(
    lambda parts: '"' + "".join(parts) + '"',
    st.lists(st.one_of(st.text(alphabet=QUOTED, max_size=6), varref,
                       st.sampled_from(['\\"', "\\\\", "\\$", "\\n", "$"])), max_size=4),
)
squoted = st.builds(lambda t: "'" + t + "'", st.text(alphabet=QUOTED.replace("'", "") + '"', max_size=6))
special = st.sampled_from(["on", "Off", "YES", "none", "null", "true", "False", "E_ALL", "E_ALL & ~E_NOTICE",
                           "PHP_OS", "~", "|", "&", "!", "(", ")", "$pool", "$prefix", "=", "#", "1.5", "-3",
                           "x$y", "$HOME", "a$;b", '"' + "a b" + '"'])
piece = st.one_of(word, word, st.sampled_from([" ", "\t", "  "]), dquoted, squoted, varref, special)
value = st.builds("".join, st.lists(piece, max_size=4))
comment = st.sampled_from(["", "", " ; comment", ";x", "   "])
space = st.sampled_from(["", " ", "\t", "  "])
key = st.sampled_from(["a", "B", "memory_limit", "error_log", "x y", " k ", "sendmail_path", "E_ALL", "",
                       '"q"', "${V1}", "'r'", "a.b", "-1"])


@st.composite
def array_line(draw):
    arr = draw(st.sampled_from(["php_value", "php_admin_value", "env", "php_flag", "php_admin_flag"]))
    return f"{arr}[{draw(key)}]{draw(space)}={draw(space)}{draw(value)}{draw(comment)}"


@st.composite
def scalar_line(draw):
    name = draw(st.sampled_from(["listen.mode", "ping.response", "apparmor_hat", "security.limit_extensions",
                                 "user", "group", "Listen.Mode", "catch_workers_output", "rlimit_files",
                                 "request_terminate_timeout", "access.format", "access.format"]))
    if name == "user":
        val = draw(st.sampled_from(["www-data", "nobody", '"nobody"', "'www-data'"]))
    elif name == "access.format":
        val = '"' + draw(st.text(alphabet="%{}CdMeotTflmnpPqQrRsux ", max_size=10)) + '"'
        val = draw(st.sampled_from([val, '"%{mili}d %{kilo}M %{user}C %{X}e %{%Y}t"', '"%{giga}M"']))
    elif name == "group":
        val = draw(st.sampled_from(["www-data", "nogroup", "nogroup ; c"]))
    else:
        val = draw(value)
    return f"{name}{draw(space)}={draw(space)}{val}{draw(comment)}"


junk_line = st.sampled_from(["# hash comment", "bare", "[", "x = a=b", "key = 'unterminated", "; fine comment",
                             "", "   ", "\r"])
body_line = st.one_of(array_line(), array_line(), scalar_line(), junk_line)


@st.composite
def tree(draw):
    names = draw(st.lists(st.sampled_from(["site", "Site", "SITE", "other", "x.example"]), min_size=1, max_size=3))
    files = {}
    seen = []
    for i, name in enumerate(names):
        lines = [f"{draw(st.sampled_from(['', chr(9)]))}[{draw(st.sampled_from([name, name + ' ', chr(34) + name + chr(34)]))}]{draw(comment)}"]
        if name.lower() not in seen:
            seen.append(name.lower())
            lines += ["user = www-data", f"listen = @ROOT@/run/{name.lower()}.sock", "pm = static",
                      "pm.max_children = 1"]
            if draw(st.booleans()):
                lines.append(f"access.log = @ROOT@/var/log/{name.lower()}.log")
        lines += draw(st.lists(body_line, max_size=5))
        if draw(st.booleans()):
            lines.append(draw(st.sampled_from([
                "include=@ROOT@/etc/snippets/*.inc", "include=../etc/snippets/*.inc",
                "include = \"@ROOT@/etc/snippets/a.inc\""])))
        files[f"etc/php/8.2/fpm/pool.d/{i:02d}.conf"] = "\n".join(lines) + draw(st.sampled_from(["\n", ""]))
    files["etc/snippets/a.inc"] = "\n".join(draw(st.lists(body_line, max_size=3))) + "\n"
    return files


def render(files: dict) -> str:
    text = ("# expect: any\n=== etc/php/8.2/fpm/php-fpm.conf\n[global]\n"
            "include=@ROOT@/etc/php/8.2/fpm/pool.d/*.conf\n"
            f"=== etc/php/8.2/fpm/php.ini\n{PHP_INI}")
    for path, body in files.items():
        text += f"=== {path}\n{body}\n" if not body.endswith("\n") else f"=== {path}\n{body}"
    return text


@needs_fpm
@pytest.mark.oracle
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree())
def test_generated_configs_agree(files):
    root = Path(tempfile.mkdtemp(prefix="fpm-prop-"))
    try:
        # Files are written as given (no trailing newline added when the body lacks one).
        for rel, body in files.items():
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
        _, env = materialize(render(files), root)
        for rel, body in files.items():
            (root / rel).write_text(body.replace("@ROOT@", str(root)))
        env.update(ENV)
        write_wrapper(root)
        fpm_ok, ours_ok, diffs, out, err = compare(root, env)
        assert fpm_ok == ours_ok, f"php-fpm ok={fpm_ok}, ours ok={ours_ok} ({err})\n{files}\n{out}"
        assert not diffs, (diffs, files)
    finally:
        shutil.rmtree(root, ignore_errors=True)

"""automata.py against three oracles: apparmor_parser's own translation of a glob to a
regular expression (parser_regex.c, rewritten here as a Python regex), python3-apparmor's
AARE matcher (where its approximation agrees with the parser), and the enumerating checker
automata.py replaced (old_witnesses.py), plus brute force over short paths for emptiness."""

import itertools
import re
import time

from apparmor.aare import AARE
from hypothesis import HealthCheck, given, settings, strategies as st

from old_witnesses import is_forbidden_name as old_forbidden, witnesses as old_witnesses
from php_fpm_apparmor import automata
from php_fpm_apparmor.invariants import code_witness
from php_fpm_apparmor.policy import CODE_NAMES, NEVER_WRITE_GLOBS, fold, is_code_name

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- oracle: apparmor_parser's translation (convert_aaregex_to_pcre), as a Python regex --

def parser_regex(aare: str) -> re.Pattern:
    aare = re.sub("/+", "/", aare)
    out, i, depth = [], 0, 0
    while i < len(aare):
        c = aare[i]
        if c == "\\":
            out.append(re.escape(aare[i + 1]))
            i += 2
            continue
        if c == "*":
            j = i
            while j < len(aare) and aare[j] == "*":
                j += 1
            if out and out[-1] == "/" and (j == len(aare) or aare[j] == "/"):
                out.append("[^/\\x00]")
            out.append("[^\\x00]*" if j - i >= 2 else "[^/\\x00]*")
            i = j
            continue
        if c == "?":
            out.append("[^/\\x00]")
        elif c == "[":
            j = aare.index("]", i + 1)
            body = aare[i + 1:j]
            neg = body.startswith("^")
            body = body[1:] if neg else body
            out.append("[" + ("^" if neg else "") + body.replace("\\", "\\\\") + "]")
            i = j + 1
            continue
        elif c == "{":
            depth += 1
            out.append("(?:")
        elif c == "}":
            depth -= 1
            out.append(")")
        elif c == "," and depth:
            out.append("|")
        else:
            out.append("/" if c == "/" else re.escape(c))
        i += 1
    return re.compile("".join(out), re.S)


def parser_matches(aare: str, path: str) -> bool:
    return parser_regex(aare).fullmatch(path) is not None


# --- generated globs and paths ------------------------------------------------------------

LETTERS = "ab.P"
CLASSES = ["[ab]", "[^a]", "[a-c]", "[pP]", "[^/.]"]


def glob_items(safe: bool):
    """Glob text pieces. safe: only forms where python3-apparmor reads like the parser."""
    literal = st.sampled_from(list(LETTERS) + ["/"])
    leaves = st.one_of(literal, literal, st.just("?"), st.sampled_from(CLASSES),
                       st.sampled_from(["*", "**"]))
    return st.recursive(
        st.lists(leaves, min_size=0, max_size=4).map("".join),
        lambda inner: st.lists(st.one_of(leaves.map(lambda x: x), inner.map(lambda x: x),
                                         st.lists(inner, min_size=2, max_size=3).map(lambda alts: "{" + ",".join(alts) + "}")),
                               min_size=1, max_size=4).map("".join),
        max_leaves=8)


def _python_safe(glob: str) -> bool:
    """python3-apparmor's convert_regexp differs from the parser on a star right after a
    group, a class or `?` (it looks at the path, not the pattern), on one after "/" that
    is followed by more text (it wants a character there), and on escapes (Debian 12)."""
    if "\\" in glob or "//" in glob or "***" in glob or re.search(r"[{,}\]?]\*", glob) or "{}" in glob:
        return False
    for m in re.finditer(r"/\*+", glob):
        nxt = glob[m.end():m.end() + 1]
        if nxt not in ("", "/"):
            return False
    return True


globs = glob_items(safe=False).map(lambda g: "/" + g)
paths = st.text(alphabet="ab.P/", min_size=0, max_size=8).map(lambda p: "/" + p)


@SETTINGS
@given(globs, st.lists(paths, min_size=1, max_size=8))
def test_matches_like_apparmor_parser(glob, names):
    nfa = automata.compile(glob)
    for name in names:
        assert automata.matches(nfa, name) == parser_matches(glob, name), (glob, name)


@SETTINGS
@given(globs.filter(_python_safe), st.lists(paths.filter(lambda p: "//" not in p), min_size=1, max_size=8))
def test_matches_like_python3_apparmor(glob, names):
    aare = AARE(glob, True)
    for name in names:
        assert automata.glob_matches(glob, name) == bool(aare.match(name)), (glob, name)


SHORT = ["/" + "".join(t) for n in range(0, 5) for t in itertools.product("ab.P/", repeat=n)]


@settings(max_examples=150, deadline=None)
@given(globs, globs)
def test_intersection_is_empty_exactly_when_no_path_is_in_both(a, b):
    w = automata.intersect(automata.compile(a), automata.compile(b))
    if w is not None:
        assert parser_matches(a, w) and parser_matches(b, w), (a, b, w)
    else:  # no short path in both either
        rx_a, rx_b = parser_regex(a), parser_regex(b)
        assert not any(rx_a.fullmatch(p) and rx_b.fullmatch(p) for p in SHORT), (a, b)


@settings(max_examples=150, deadline=None)
@given(globs, st.sets(st.sampled_from(["/a", "/a/b", "/b", "/a.P", "/ab"]), max_size=3),
       st.booleans())
def test_under_subtracts_literal_trees(glob, dirs, tree):
    under = automata.Under({(d, tree) for d in dirs})
    w = automata.intersect(automata.compile(glob), avoid=[under])
    inside = lambda p: any(p == d or (tree and p.startswith(d + "/")) for d in dirs)  # noqa: E731
    if w is not None:
        assert parser_matches(glob, w) and not inside(w), (glob, dirs, w)
    else:
        rx = parser_regex(glob)
        assert not any(rx.fullmatch(p) and not inside(p) for p in SHORT), (glob, dirs)


# --- the code-name list ------------------------------------------------------------------

CODE_EXAMPLES = ["/a/x.php", "/a/x.PHP", "/a/x.pHp7", "/a/x.pht", "/a/x.PHTML", "/a/x.phar",
                 "/a/x.phps", "/a/x.inc", "/a/.php", "/a/.htaccess", "/a/.HTAccess", "/a/.user.ini",
                 "/a/.maintenance", "/x.php5"]
NOT_CODE = ["/a/x.php.txt", "/a/x.php77", "/a/x.jpg", "/a/xhtaccess", "/a/x.htaccess", "/a/php",
            "/a/x.ph", "/a/x.php/", "/a/.htaccess.bak", "/a/x.phtm", "/a/x.in"]


def test_code_names_one_case_insensitive_list():
    for p in CODE_EXAMPLES:
        assert is_code_name(p), p
    for p in NOT_CODE:
        assert not is_code_name(p), p
    assert fold("php[0-9]") == "[pP][hH][pP][0-9]"


def test_deny_globs_cover_the_code_names_as_the_parser_reads_them():
    for p in CODE_EXAMPLES:
        q = "/srv/d" + p
        assert any(parser_matches("/srv/d" + g, q) for g in NEVER_WRITE_GLOBS), q
        assert parser_matches(CODE_NAMES, p)
    for p in NOT_CODE:
        assert not any(parser_matches("/srv/d" + g, "/srv/d" + p) for g in NEVER_WRITE_GLOBS), p


def test_deny_globs_as_python3_apparmor_reads_them():
    # what evaluate.allows() (the tests' judge) sees must agree too
    for p in CODE_EXAMPLES:
        assert any(AARE("/srv/d" + g, True).match("/srv/d" + p) for g in NEVER_WRITE_GLOBS), p
    for p in NOT_CODE:
        assert not any(AARE("/srv/d" + g, True).match("/srv/d" + p) for g in NEVER_WRITE_GLOBS), p


old_globs = st.lists(st.one_of(st.sampled_from(["a", "/", ".", "p", "h", "x"]),
                               st.sampled_from(["*", "**", "?", "[ph]", "{php,jpg}", "{a,.ph}"])),
                     min_size=1, max_size=5).map(lambda t: "/d/" + "".join(t))


@settings(max_examples=300, deadline=None)
@given(old_globs)
def test_finds_what_the_old_enumerating_checker_found(glob):
    # the old list (.php/.phtml/.phar, case-sensitive) is inside the new one
    old = [w for w in old_witnesses(glob) if old_forbidden(w) and automata.glob_matches(glob, w)]
    new = code_witness(glob)
    if old:
        assert new is not None, (glob, old[:3])
    if new is not None:
        assert is_code_name(new) and parser_matches(glob, new), (glob, new)


def test_no_blow_up_on_case_folded_extension_lists():
    exts = [f"{a}{b}{c}" for a in "jgpmtw" for b in "pino" for c in "gfav"][:120]
    glob = "/var/www/a/uploads/**.{" + ",".join(fold(e) for e in exts) + "}"
    t = time.perf_counter()
    assert code_witness(glob) is None
    evil = glob[:-1] + "," + fold("php5") + "}"
    assert code_witness(evil) == "/var/www/a/uploads/.php5"
    assert time.perf_counter() - t < 2.0  # the enumerating checker needed minutes and GBs here

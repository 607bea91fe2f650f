#!/usr/bin/python3
"""A real app over HTTP, run as root inside a booted Debian system (stdlib only).

Debian's `wordpress` package with mariadb, served by nginx through a pool with its own hat
in enforce mode. Through curl (forms, then the REST API with the login cookie) as a user
would: install, log in, upload an image, publish a post and read it back; then anonymous
page views through a page cache with WP Super Cache's layout (a stand-in: wp/advanced-cache.php,
see docs/system-tests.md) write the cached pages. The hat must refuse none of that (zero
DENIED or ALLOWED lines for it); in the same boot every row of the WordPress and WP Super
Cache plugins' EXPECTATIONS tables (config.json: read, write, exec, mail) runs in the pool:
allowed rows work, attacks are refused with a DENIED line naming the hat.
"""

import base64
import glob
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import admin  # noqa: E402  (the shared helpers: sh, check, stage, probe plumbing)
from admin import CFG, FPM, PHP, RESULTS, check, kmsg, label, read, sh, stage, unit  # noqa: E402

PORT = 8010
URL = f"http://localhost:{PORT}"
ROOT, CONTENT = "/usr/share/wordpress", "/var/lib/wordpress/wp-content"
CACHE = f"{CONTENT}/cache"  # WP Super Cache's $cache_path (wp/wp-cache-config.php)
WP = f"{admin.PAYLOAD}/wp"  # theme, WP Super Cache stand-in, sendmail stand-in
SPOOL = "/var/spool/mail-php"  # an MTA queue the shared _sendmail profile may write
DIE = "<?php die(); ?>"
USER, PASSWORD = "admin", "pfa-Test-Passw0rd-1"
JAR = "/tmp/wp-cookies"
# 1x1 PNG
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def hat_lines(since):
    """Every DENIED or ALLOWED line of the WordPress hat (or its children)."""
    return [ln for ln in kmsg()[since:] if 'profile="php-fpm//wp' in ln
            and ('apparmor="DENIED"' in ln or 'apparmor="ALLOWED"' in ln)]


def _json(text):
    try:
        value = json.loads(text)
        return value if isinstance(value, dict) else {"value": value}
    except ValueError:
        return {"raw": text[-1500:]}


def curl(args):
    return sh(f"curl -s -m 120 -b {JAR} -c {JAR} {args}")[1]


def setup():
    # The image has no /etc/hosts entry for localhost (curl resolves it itself, Python not).
    if "localhost" not in read("/etc/hosts"):
        with open("/etc/hosts", "a") as f:
            f.write("127.0.0.1 localhost\n")
    sh("systemctl unmask mariadb && systemctl start mariadb", check_rc="mariadb started")
    sh("mysql -e \"CREATE DATABASE wordpress; CREATE USER 'wp'@'localhost' IDENTIFIED BY 'wp';"
       " GRANT ALL ON wordpress.* TO 'wp'@'localhost'\"", check_rc="database created")
    with open("/etc/wordpress/config-localhost.php", "w") as f:
        f.write("<?php\ndefine('DB_NAME', 'wordpress');\ndefine('DB_USER', 'wp');\n"
                "define('DB_PASSWORD', 'wp');\ndefine('DB_HOST', 'localhost');\n"
                f"define('WP_CONTENT_DIR', '{CONTENT}');\n"
                f"define('WP_CONTENT_URL', '{URL}/wp-content');\n"
                "define('FS_METHOD', 'direct');\n"
                # WordPress loads wp-content/advanced-cache.php (the page cache's drop-in).
                "define('WP_CACHE', true);\n"
                # The image has no theme (Debian only recommends one): install picks ours.
                "define('WP_DEFAULT_THEME', 'pfa');\n")
    sh("chgrp www-data /etc/wordpress/config-localhost.php && "
       "chmod 0640 /etc/wordpress/config-localhost.php")
    with open("/etc/nginx/sites-enabled/wp", "w") as f:
        f.write(f"server {{\n  listen 127.0.0.1:{PORT};\n  server_name localhost;\n"
                f"  root {ROOT};\n  index index.php;\n  client_max_body_size 20m;\n"
                f"  location /wp-content/ {{ alias {CONTENT}/; }}\n"
                "  location / { try_files $uri $uri/ /index.php?$args; }\n"
                "  location ~ \\.php$ {\n    include snippets/fastcgi-php.conf;\n"
                "    fastcgi_pass unix:/run/php/wp.sock;\n  }\n}\n")
    with open(f"/etc/php/{PHP}/fpm/pool.d/wp.conf", "w") as f:
        f.write("[wp]\nuser = www-data\ngroup = www-data\nlisten = /run/php/wp.sock\n"
                "listen.owner = www-data\nlisten.group = www-data\npm = static\n"
                f"pm.max_children = 2\nchdir = {ROOT}\napparmor_hat = wp\n")
    with open(f"{ROOT}/pfa-probe.php", "w") as f:
        f.write(read(f"{admin.PAYLOAD}/probe.php"))
    install = "install -D -m 0644 -o root -g root"
    sh(f"{install} {WP}/style.css {WP}/index.php -t {CONTENT}/themes/pfa/", check_rc="theme pfa")
    # WP Super Cache as installed (its main file is what detection looks for), set up
    # (wp-cache-config.php) and enabled (WP_CACHE, advanced-cache.php): a stand-in, as
    # wordpress.org is out of reach; it writes what and where the plugin writes.
    sh(f"{install} {WP}/wp-cache.php -t {CONTENT}/plugins/wp-super-cache/ && "
       f"{install} {WP}/wp-cache-config.php {WP}/advanced-cache.php -t {CONTENT}/",
       check_rc="WP Super Cache's files in place (stand-in)")
    # No MTA in the image: a sendmail stand-in script (mail() is judged by AppArmor's exec
    # decisions: /bin/sh -c, then sendmail_path into the shared _sendmail profile).
    check("no sendmail in the image (stand-in installed)", not os.path.exists("/usr/sbin/sendmail"))
    sh(f"install -m 0755 {WP}/sendmail /usr/sbin/sendmail && install -d -m 1777 {SPOOL}")
    sh(f"apt-get install -y {admin.PAYLOAD}/{CFG['deb']}", check_rc="apt install ./php-fpm-apparmor_*.deb")
    # /usr/share is never inferred as a site root (a system directory): the admin says so.
    with open("/etc/php-fpm-apparmor/php-fpm-apparmor.conf", "a") as f:
        f.write(f"\n[{PHP}/wp]\nroot = {ROOT}\n")
    sh("systemctl reload nginx", check_rc="nginx reload")
    sh(f"systemctl restart {FPM}", check_rc=f"systemctl restart {FPM}")
    profiles = admin.loaded()
    check("php-fpm//wp loaded", any(p.startswith("php-fpm//wp ") for p in profiles),
          "\n".join(p for p in profiles if "php-fpm" in p))
    status = sh("php-fpm-apparmor status")[1]
    check("wordpress detected in the wp pool", "wordpress" in status, status)
    check("wp-super-cache detected in the wp pool", "wp-super-cache" in status, status)
    hat = read("/etc/apparmor.d/php-fpm.d/wp")
    check("wp's hat has WP Super Cache's rules", f"{CACHE}/supercache/" in hat, hat[-3000:])
    pids = admin.workers("wp")
    check("every wp worker in php-fpm//wp (enforce)",
          pids and all(label(p) == "php-fpm//wp (enforce)" for p in pids),
          {p: label(p) for p in pids})


def use_wordpress():
    mark = len(kmsg())
    out = curl(f"-d weblog_title=PFA -d user_name={USER} -d admin_password={PASSWORD} "
               f"-d admin_password2={PASSWORD} -d pw_weak=1 -d admin_email=admin@example.invalid "
               f"-d blog_public=0 '{URL}/wp-admin/install.php?step=2'")
    check("install.php: WordPress installed", "Success!" in out or "wp-login.php" in out, out[-1500:])
    curl(f"'{URL}/wp-login.php'")
    curl(f"-d log={USER} -d pwd={PASSWORD} -d testcookie=1 -d 'wp-submit=Log In' "
         f"-d redirect_to={URL}/wp-admin/ '{URL}/wp-login.php'")
    dash = curl(f"'{URL}/wp-admin/'")
    check("logged in: the dashboard answers", "Dashboard" in dash, dash[-1500:])
    # The REST API with the logged-in cookie and its nonce, as the block editor does
    # (XML-RPC would need php-xml, which Debian's wordpress does not pull in).
    nonce = curl(f"'{URL}/wp-admin/admin-ajax.php?action=rest-nonce'").strip()
    with open("/tmp/pfa-cat.png", "wb") as f:
        f.write(PNG)
    media = _json(curl(f"-X POST -H 'X-WP-Nonce: {nonce}' -H 'Content-Type: image/png' "
                       "-H 'Content-Disposition: attachment; filename=pfa-cat.png' "
                       f"--data-binary @/tmp/pfa-cat.png '{URL}/?rest_route=/wp/v2/media'"))
    check("image uploaded (REST /wp/v2/media)", media.get("source_url"), media)
    files = sh(f"find {CONTENT}/uploads -name 'pfa-cat*.png'")[1].split()
    check("the image is in uploads/", files, files)
    body = json.dumps({"title": "PFA hello", "status": "publish",
                       "content": f"<img src=\"{media.get('source_url', '')}\"> confined"})
    with open("/tmp/pfa-post.json", "w") as f:
        f.write(body)
    post = _json(curl(f"-X POST -H 'X-WP-Nonce: {nonce}' -H 'Content-Type: application/json' "
                      f"--data-binary @/tmp/pfa-post.json '{URL}/?rest_route=/wp/v2/posts'"))
    # Read back anonymously (no cookie): public once published. Through the REST API, as
    # the image has no theme (Debian's wordpress only recommends twentytwentythree).
    public = _json(sh(f"curl -s -m 120 '{URL}/?rest_route=/wp/v2/posts/{post.get('id')}'")[1])
    check("post published and served to anyone",
          public.get("status") == "publish" and "PFA hello" in str(public.get("title"))
          and "pfa-cat" in str(public.get("content")), f"{post.get('id')} {public}")
    time.sleep(1)
    lines = hat_lines(mark)
    check("zero denials for php-fpm//wp (install, log in, upload, publish)", not lines,
          "\n".join(lines))
    return public


def page_cache(post):
    """Anonymous page views write the page cache, in WP Super Cache's layout, and the next
    view is served from it; logged-in views are never cached."""
    mark = len(kmsg())
    sh("mysql wordpress -e \"UPDATE wp_options SET option_value = '/%postname%/' WHERE "
       "option_name = 'permalink_structure'; DELETE FROM wp_options WHERE option_name = "
       "'rewrite_rules'\"", check_rc="pretty permalinks (/%postname%/)")
    slug = post.get("slug") or "pfa-hello"
    for path in ("/", f"/{slug}/"):
        d = f"{CACHE}/supercache/localhost{path}"
        rc, body, _ = sh(f"curl -s -m 120 -D /tmp/pfa-head '{URL}{path}'")
        head = read("/tmp/pfa-head").lower()
        check(f"GET {path}: 200, the post in the page, a cache miss", head.startswith("http/1.1 200")
              and "PFA hello" in body and "x-pfa-cache: miss" in head, head + body[-800:])
        page = read(f"{d}index.html")
        check(f"{d}index.html: the page as served", body and page.startswith(body)
              and "WP-Super-Cache" in page, page[-500:])
        check(f"{d}index.html written by the worker (www-data)",
              sh(f"stat -c %U {d}index.html")[1].strip() == "www-data")
        legacy = sorted(glob.glob(f"{d}wp-cache-*.php") + glob.glob(f"{d}meta-wp-cache-*.php"))
        check(f"{d}: wp-cache-<md5>.php and its meta file, data behind {DIE}",
              len(legacy) == 2 and all(read(f).startswith(DIE) for f in legacy), legacy)
        rc, again, _ = sh(f"curl -s -m 120 -D /tmp/pfa-head '{URL}{path}'")
        check(f"GET {path} again: served from the cache", again == page
              and "x-pfa-cache: hit" in read("/tmp/pfa-head").lower(), read("/tmp/pfa-head"))
    dash = curl(f"-D /tmp/pfa-head '{URL}/{slug}/'")  # the login cookie
    check("a logged-in view is not served from the cache",
          "x-pfa-cache" not in read("/tmp/pfa-head").lower() and "PFA hello" in dash,
          read("/tmp/pfa-head"))
    tmp = sh(f"find {CACHE} -name '*.tmp'")[1].split()
    check("no temp file left in the cache", not tmp, tmp)
    time.sleep(1)
    lines = hat_lines(mark)
    check("zero denials for php-fpm//wp (page views written to the cache)", not lines,
          "\n".join(lines))


def kernel_lines(since, kind="DENIED"):
    return [ln for ln in kmsg()[since:] if f'apparmor="{kind}"' in ln]


def run_row(row):
    """One EXPECTATIONS row through the probe page: (its answer, the kernel lines it caused)."""
    mark = len(kmsg())
    if row["op"] == "exec":
        path = json.dumps(row["argv"])
    elif row["op"] == "mail":
        path = "probe@example.invalid"
    else:
        path = row["target"]
    r = admin.probe_url(f"{URL}/pfa-probe.php", row["op"], path)
    time.sleep(0.2)
    return r, [ln for ln in kmsg()[mark:] if 'profile="php-fpm' in ln
               and ('apparmor="DENIED"' in ln or 'apparmor="ALLOWED"' in ln)]


def attacks():
    for row in CFG["rows"]:
        op, target, expect, why = row["op"], row["target"], row["expect"], row["why"]
        name = f"[{row['table']}] {expect} {op} {' '.join(row['argv']) if op == 'exec' else target} ({why})"
        r, lines = run_row(row)
        if expect == "allow":
            ok = r.get("ok")
            if op == "mail":  # delivered: the stand-in queued it, in the shared _sendmail profile
                ok = ok and r.get("token") and sh(f"grep -rl {r['token']} {SPOOL}")[1].strip()
            check(name, ok, r)
            check(f"{name}: no DENIED or ALLOWED line", not lines, "\n".join(lines))
            continue
        if op in ("read", "write"):
            check(f"{name}: EACCES", r.get("ok") is False
                  and "Permission denied" in (r.get("error") or ""), r)
            if target.startswith("/etc/"):  # DAC judges system files before AppArmor
                continue
            key = f'name="{target}"'
        elif op == "exec":
            # PHP 8.4 spawns with posix_spawn, which returns execve's EACCES; PHP 8.2 forks
            # and its child exits 127 whatever execve's errno was (the DENIED line says why).
            check(f"{name}: refused", r.get("ok") is False and (
                r.get("status") in (126, 127) or "Permission denied" in (r.get("error") or "")), r)
            key = f'name="{os.path.realpath(row["argv"][0])}"'
        else:
            check(f"{name}: refused", r.get("ok") is False, r)
            key = 'operation="exec"'
        hits = [ln for ln in lines if 'apparmor="DENIED"' in ln and key in ln
                and 'profile="php-fpm//wp' in ln]
        check(f"{name}: DENIED line naming php-fpm//wp", hits, "\n".join(lines))


def prepare_targets():
    """Every row's target reachable by DAC, so AppArmor alone decides."""
    for row in CFG["rows"]:
        t = row["argv"][0] if row["op"] == "exec" else row["target"]
        if t.startswith("/etc/") or row["op"] == "mail" or (row["op"] == "exec"
                                                             and not t.startswith(CONTENT)):
            continue  # system files and programs stay as Debian ships them
        parent = os.path.dirname(t)
        os.makedirs(parent, exist_ok=True)
        sh(f"chown www-data:www-data '{parent}'")
        if row["op"] == "read" and not os.path.exists(t):
            with open(t, "w") as f:
                f.write("<?php // a file to read\n")
        if row["op"] == "exec" and not os.path.exists(t):
            with open(t, "w") as f:  # a program an attacker dropped
                f.write("#!/bin/sh\necho mined\n")
            os.chmod(t, 0o755)
        if os.path.exists(t):
            sh(f"chown www-data:www-data '{t}' && chmod a+r '{t}'")


def main():
    os.makedirs(RESULTS, exist_ok=True)
    sh("sysctl -w kernel.printk_ratelimit=0 kernel.printk_ratelimit_burst=10000")
    admin.start_watchdog(CFG.get("watchdog", 1500))
    with stage("boot"):
        check(f"kernel {CFG['kernel']}", os.uname().release.startswith(CFG["kernel"] + "."))
        sh("systemctl is-system-running --wait", timeout=300)
        check(f"{FPM} active", unit(FPM, "ActiveState") == "active")
    with stage("wp-setup"):
        setup()
    post = {}
    with stage("wp-use"):
        post = use_wordpress()
    with stage("wp-page-cache"):
        page_cache(post)
    with stage("wp-attacks"):
        prepare_targets()
        attacks()
    admin.collect("boot1")
    with open(f"{RESULTS}/done", "w") as f:
        f.write("1\n")
    os.sync()
    sh("systemctl poweroff")


if __name__ == "__main__":
    sys.exit(main())

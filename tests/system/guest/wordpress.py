#!/usr/bin/python3
"""A real app over HTTP, run as root inside a booted Debian system (stdlib only).

Debian's `wordpress` package with mariadb, served by nginx through a pool with its own hat
in enforce mode. Through curl (forms, then the REST API with the login cookie) as a user would: install, log in, upload an image,
publish a post and read it back. The hat must refuse none of that (zero DENIED or ALLOWED
lines for it); in the same boot every read/write row of the WordPress plugin's
EXPECTATIONS table (config.json) runs in the pool: allowed rows work, attacks get EACCES.
"""

import base64
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
                "define('FS_METHOD', 'direct');\n")
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


def attacks():
    mark = len(kmsg())
    for row in CFG["rows"]:
        op, target, expect, why = row["op"], row["target"], row["expect"], row["why"]
        r = admin.probe_url(f"{URL}/pfa-probe.php", op, target)
        if expect == "allow":
            check(f"allow {op} {target} ({why})", r.get("ok"), r)
        else:
            check(f"deny {op} {target} ({why}): EACCES", r.get("ok") is False
                  and "Permission denied" in (r.get("error") or ""), r)
            if not target.startswith("/etc/"):  # DAC judges system files before AppArmor
                time.sleep(0.2)
                hits = [ln for ln in kmsg()[mark:] if 'apparmor="DENIED"' in ln
                        and f'name="{target}"' in ln and 'profile="php-fpm//wp' in ln]
                check(f"deny {op} {target}: DENIED line naming php-fpm//wp", hits)


def prepare_targets():
    """Every row's target reachable by DAC, so AppArmor alone decides."""
    for row in CFG["rows"]:
        t = row["target"]
        if t.startswith("/etc/"):
            continue
        parent = os.path.dirname(t)
        os.makedirs(parent, exist_ok=True)
        sh(f"chown www-data:www-data '{parent}'")
        if row["op"] == "read" and not os.path.exists(t):
            with open(t, "w") as f:
                f.write("<?php // a file to read\n")
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
    with stage("wp-use"):
        use_wordpress()
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

# Sourced by the VM's shell (busybox sh, root, unconfined) for tests/test_vm_attacks.py.
# att POOL OP TARGET [STEAL]: one request to POOL's attack.php; prints "RESULT <json>" and
# "LABEL <the worker's AppArmor label>". Params travel as FastCGI variables, so targets
# may hold live pids: att shop kill "$(worker blog)".

# pids whose command line starts with $1 (php-fpm renames its processes).
pids() {
    for d in /proc/[0-9]*; do
        c=$(tr '\0' ' ' < "$d/cmdline" 2>/dev/null)
        case "$c" in "$1"*) echo "${d#/proc/}";; esac
    done
}
worker() { pids "php-fpm: pool $1" | head -n 1; }
master() { pids "php-fpm: master process" | head -n 1; }

att() {
    env -i SCRIPT_FILENAME="/var/www/$1/public/attack.php" SCRIPT_NAME=/attack.php \
        REQUEST_METHOD=GET QUERY_STRING= SERVER_PROTOCOL=HTTP/1.1 GATEWAY_INTERFACE=CGI/1.1 \
        ATTACK_OP="$2" ATTACK_TARGET="$3" ATTACK_STEAL="$4" \
        timeout 20 cgi-fcgi -bind -connect "/run/php/$1.sock" > /run/att.out 2>&1
    line=$(grep -m1 '^PROBE-JSON ' /run/att.out)
    if [ -z "$line" ]; then
        echo "NORESULT $(head -c 300 /run/att.out | tr '\n' ' ')"
        return
    fi
    echo "RESULT ${line#PROBE-JSON }"
    pid=$(echo "$line" | sed -n 's/.*"pid":\([0-9]*\).*/\1/p')
    echo "LABEL $(cat /proc/$pid/attr/current 2>/dev/null)"
    # The victim worker an injected request ran in, if any.
    vp=$(echo "$line" | sed -n 's/.*victim_pid=\([0-9]*\).*/\1/p')
    [ -n "$vp" ] && echo "VICTIM $(cat /proc/$vp/attr/current 2>/dev/null)"
    return 0
}

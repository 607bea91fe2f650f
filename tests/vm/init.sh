#!/bin/busybox sh
# /init of the test VM (tests/vm). Mounts the kernel filesystems, then sources
# /harness/plan.sh, whose commands are the functions below. Every line meant for the
# host starts with "@@"; everything else on the console is context for a human.
export PATH=/harness/bb:/usr/sbin:/usr/bin
umask 022
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t securityfs securityfs /sys/kernel/security
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/php /run/harness /dev/shm /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t devpts devpts /dev/pts
hostname testvm
# Without auditd the kernel prints audit records through printk_ratelimit(): lift the
# limit so no DENIED line is lost; the console itself stays quiet (loglevel), the
# lines reach the host through `dmesg -c` at the end of each phase.
echo 0 > /proc/sys/kernel/printk_ratelimit
echo 1000000 > /proc/sys/kernel/printk_ratelimit_burst

FPM_PIDS=
PHASE=

say() { echo "@@$*"; }

# emit ID: show a captured output file line by line, each tagged with its id.
emit() { sed "s/^/@@O $1 /" /run/harness/out; }

run_cmd() {  # run_cmd ID CMD...: run, capture output and status
    id=$1; shift
    "$@" > /run/harness/out 2>&1
    rc=$?
    emit "$id"
    say "RC $id $rc"
}

phase() {
    PHASE=$1
    LOGSTART=$(cat /var/log/php*-fpm.log 2>/dev/null | wc -l)
    say "PHASE $1"
}

load() { run_cmd "$1" apparmor_parser -r -T "$2"; }
unload() { run_cmd "$1" apparmor_parser -R -T "$2"; }
shell() { id=$1; shift; run_cmd "$id" /harness/bb/sh -c "$1"; }

fpm_stop() {
    # TERM: php-fpm's fast shutdown (it still signals every worker); QUIT waits for idle.
    for pid in $FPM_PIDS; do kill -TERM "$pid" 2>/dev/null; done
    for pid in $FPM_PIDS; do
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    FPM_PIDS=
    # Workers the master could not stop (e.g. a hat without `signal (receive)
    # peer=php-fpm`) would keep serving the old sockets: kill them, and say so.
    for exe in /proc/[0-9]*/exe; do
        case "$(readlink "$exe" 2>/dev/null)" in
        /usr/sbin/php-fpm*)
            p=${exe#/proc/}; p=${p%/exe}
            say "WARN $PHASE: killed a php-fpm process its master left behind: pid $p $(cat /proc/$p/attr/current)"
            kill -KILL "$p" 2>/dev/null;;
        esac
    done
}

fpm_alive() {
    for pid in $FPM_PIDS; do kill -0 "$pid" 2>/dev/null && return 0; done
    return 1
}

fpm_start() {  # fpm_start ID BINARY=CONF... -- SOCKET...: (re)start the masters, wait for sockets
    id=$1; shift
    fpm_stop
    : > /run/harness/fpm.out
    # A socket left by the previous master (one denied its unlink) must not pass for
    # the new one: remember the inodes, wait for new ones.
    old=
    for sock in $(echo "$@" | sed 's/.* -- //'); do
        old="$old $sock=$(stat -c %i "$sock" 2>/dev/null)"
    done
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do
        # -F keeps each master in the foreground of this shell, so $! is its pid; -R
        # lets it run as root, as under systemd.
        "${1%%=*}" -F -R -y "${1#*=}" >> /run/harness/fpm.out 2>&1 &
        FPM_PIDS="$FPM_PIDS $!"
        shift
    done
    shift
    frc=0
    for sock in "$@"; do
        was=
        for o in $old; do [ "${o%=*}" = "$sock" ] && was=${o#*=}; done
        i=0
        while [ $i -lt 150 ] && fpm_alive; do
            [ -S "$sock" ] && [ "$(stat -c %i "$sock")" != "$was" ] && break
            sleep 0.1; i=$((i+1))
        done
        [ -S "$sock" ] && [ "$(stat -c %i "$sock")" != "$was" ] || { say "NOSOCKET $id $sock"; frc=1; }
    done
    for pid in $FPM_PIDS; do kill -0 "$pid" 2>/dev/null || { say "FPMDIED $id $pid"; frc=1; }; done
    cp /run/harness/fpm.out /run/harness/out; emit "$id"
    say "RC $id $frc"
}

probe() {  # probe ID SOCKET SCRIPT QUERY
    id=$1
    env -i SCRIPT_FILENAME="$3" SCRIPT_NAME="/probe.php" REQUEST_METHOD=GET \
        QUERY_STRING="$4" SERVER_PROTOCOL=HTTP/1.1 GATEWAY_INTERFACE=CGI/1.1 \
        timeout 10 cgi-fcgi -bind -connect "$2" > /run/harness/out 2>&1
    rc=$?
    line=$(grep -m1 '^PROBE-JSON ' /run/harness/out)
    if [ -n "$line" ]; then
        say "RESULT $id ${line#PROBE-JSON }"
        pid=$(echo "$line" | sed -n 's/.*"pid":\([0-9]*\).*/\1/p')
        [ -n "$pid" ] && say "LABEL $id $(cat /proc/$pid/attr/current 2>/dev/null)"
    else
        emit "$id"
        say "NORESULT $id $rc"
    fi
}

# dac_open PATH: let any user at PATH (file and its directories), so that only
# AppArmor decides what a probe may do. Missing paths: open the nearest parent.
dac_open() {
    p=$1
    while [ ! -e "$p" ] && [ "$p" != "/" ]; do p=$(dirname "$p"); done
    [ -d "$p" ] && chmod o+rwx "$p" || chmod o+rw "$p"
    while [ "$p" != "/" ]; do p=$(dirname "$p"); chmod o+x "$p"; done
}

phase_end() {  # phase_end ID: php-fpm's log lines of this phase, then the audit lines
    # What php-fpm logged (Debian's usual error_log files) during this phase only.
    cat /var/log/php*-fpm.log 2>/dev/null | tail -n +$((LOGSTART + 1)) | tail -n 60 > /run/harness/out
    emit "$1"; say "RC $1 0"
    # Only AppArmor records; `dmesg -c` clears, so each line lands in one phase.
    dmesg -c > /run/harness/dmesg
    grep 'apparmor=' /run/harness/dmesg | sed 's/^/@@AUDIT /'
    say "ENDPHASE $PHASE"
}

say "BOOTED $(uname -r) $(cat /sys/module/apparmor/parameters/enabled 2>/dev/null)"
# Boot-time AppArmor lines, untagged: context for a human reading serial.log.
dmesg -c | grep -i apparmor
. /harness/plan.sh
fpm_stop
say "DONE"
sync
poweroff -f

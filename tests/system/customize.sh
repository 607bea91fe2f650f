#!/bin/sh
# mmdebstrap --customize-hook for the system-test images; $1 is the new root.
# Makes the image bootable from a raw virtio disk, quiet and deterministic, and installs
# the unit that runs a test payload from the second disk and powers off.
set -eu
root=$1
php=$2

echo 'pfa-test' > "$root/etc/hostname"
echo '/dev/vda / ext4 rw,errors=remount-ro 0 1' > "$root/etc/fstab"
# root without a password: the console is only a serial log nobody types into.
chroot "$root" passwd -d root >/dev/null
# serial-getty's vhangup once swallowed the console; timers would run apt/fstrim mid-test;
# mariadb only runs in the WordPress test (which unmasks it).
for unit in serial-getty@ttyS0.service getty@tty1.service apt-daily.timer \
        apt-daily-upgrade.timer fstrim.timer e2scrub_all.timer man-db.timer \
        systemd-networkd-wait-online.service mariadb.service; do
    ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
# The scenario reinstalls these from the local cache (no network): the PHP-FPM package
# (an "upgrade") and apparmor-profiles (installed, then removed).
mkdir -p "$root/var/local/debs"
chroot "$root" sh -c "cd /var/local/debs && apt-get download -q php$php-fpm apparmor-profiles" >/dev/null
# No network in the guest: apt must resolve from what is installed and cached.
rm -f "$root/etc/apt/sources.list" "$root/etc/apt/sources.list.d/"*

cat > "$root/usr/local/sbin/pfa-payload" <<'SH'
#!/bin/sh
# Run /payload/run (second disk) once per boot; it powers the machine off or reboots it.
mkdir -p /payload
mount -t ext4 /dev/vdb /payload || { echo "pfa-payload: no payload disk"; systemctl poweroff; exit 0; }
if [ -x /payload/run ]; then
    /payload/run
else
    systemctl poweroff
fi
SH
chmod 0755 "$root/usr/local/sbin/pfa-payload"
cat > "$root/etc/systemd/system/pfa-payload.service" <<'UNIT'
[Unit]
Description=php-fpm-apparmor system test payload
After=multi-user.target
[Service]
Type=simple
ExecStart=/usr/local/sbin/pfa-payload
StandardOutput=journal+console
StandardError=journal+console
[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/pfa-payload.service "$root/etc/systemd/system/multi-user.target.wants/pfa-payload.service"

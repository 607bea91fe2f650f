"""Booted full-system tests: a whole Debian image (systemd, apt, nginx, php-fpm, AppArmor)
built from Debian's archive with mmdebstrap, cached on the machine, booted under qemu TCG."""

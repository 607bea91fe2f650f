"""php-fpm-apparmor: one AppArmor hat per PHP-FPM pool, generated from the pools themselves."""

__version__ = "0.1.0"

# The pluggy project name and the entry-point group first- and third-party plugins register in.
PROJECT = "php_fpm_apparmor"

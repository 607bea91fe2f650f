<?php
/*
 * Plugin Name: WP Super Cache
 * Plugin URI: https://wordpress.org/plugins/wp-super-cache/
 * Description: Stand-in (tests/system): WP Super Cache's main file where the plugin installs it,
 *   so that php-fpm-apparmor detects it; the caching itself is wp-content/advanced-cache.php.
 * Version: 1.12.4
 * Text Domain: wp-super-cache
 */

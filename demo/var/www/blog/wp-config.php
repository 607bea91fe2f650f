<?php
/**
 * The base configuration for WordPress (demo site of php-fpm-apparmor).
 */
define( 'WP_CACHE', true ); // Added by WP-Cache Manager
define( 'DB_NAME', 'blog' );
define( 'DB_USER', 'blog' );
define( 'DB_PASSWORD', 'not-a-real-password' );
define( 'DB_HOST', 'localhost' );
define( 'DB_CHARSET', 'utf8mb4' );
$table_prefix = 'wp_';

/* Updates come from wp-cli (cron), never from the dashboard: the AppArmor hat refuses
 * code writes, and this tells WordPress not to offer them. */
define( 'DISALLOW_FILE_MODS', true );

/* That's all, stop editing! Happy publishing. */
if ( ! defined( 'ABSPATH' ) ) {
	define( 'ABSPATH', __DIR__ . '/' );
}
require_once ABSPATH . 'wp-settings.php';

<?php
/*
 * Plugin Name: WP Super Cache
 * Plugin URI: https://wordpress.org/plugins/wp-super-cache/
 * Description: Very fast caching plugin for WordPress.
 * Version: 1.12.4
 * Author: Automattic
 * License: GPL2+
 * Text Domain: wp-super-cache
 */

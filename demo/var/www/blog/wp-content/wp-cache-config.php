<?php
/*
WP-Cache Config Sample File

See wp-cache.php for author details.
*/

if ( ! defined('WPCACHEHOME') )
	define( 'WPCACHEHOME', WP_PLUGIN_DIR . '/wp-super-cache/' );

$cache_compression = 0; // Super cache compression
$cache_enabled = true;
$super_cache_enabled = true;
$cache_max_time = 3600; //in seconds
$cache_path = WP_CONTENT_DIR . '/cache/';
$file_prefix = 'wp-cache-';
$ossdlcdn = 0;
$cache_rejected_uri = array('wp-.*\\.php', 'index\\.php');

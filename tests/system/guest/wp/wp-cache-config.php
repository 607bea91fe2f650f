<?php
/*
WP-Cache Config File (tests/system: the settings of the WP Super Cache stand-in, named and
laid out as WP Super Cache's wp-cache-config-sample.php)
*/
$cache_enabled = true;
$super_cache_enabled = true;
$cache_path = WP_CONTENT_DIR . '/cache/';
$file_prefix = 'wp-cache-';
$wp_cache_mutex_disabled = 1;
$cache_rejected_uri = array('wp-.*\\.php', 'index\\.php');

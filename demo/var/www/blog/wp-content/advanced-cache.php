<?php
// WP SUPER CACHE 1.2
if ( ! include_once WP_CONTENT_DIR . '/plugins/wp-super-cache/wp-cache-phase1.php' ) { return; }

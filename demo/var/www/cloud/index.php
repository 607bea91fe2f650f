<?php
// Nextcloud front controller (demo stand-in)
require_once __DIR__ . '/lib/versioncheck.php';

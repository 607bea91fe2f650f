<?php
$CONFIG = array (
  'instanceid' => 'oc1234abcd',
  'passwordsalt' => 'salt',
  'secret' => 'demo-not-secret',
  'trusted_domains' =>
  array (
    0 => 'cloud.example.org',
  ),
  'datadirectory' => '/srv/nextcloud-data',
  'dbtype' => 'mysql',
  'version' => '30.0.4.1',
  'overwrite.cli.url' => 'https://cloud.example.org',
  'apps_paths' =>
  array (
    0 =>
    array (
      'path' => OC::$SERVERROOT . '/apps',
      'url' => '/apps',
      'writable' => false,
    ),
    1 =>
    array (
      'path' => OC::$SERVERROOT . '/custom_apps',
      'url' => '/custom_apps',
      'writable' => true,
    ),
  ),
  'config_is_read_only' => true,
  'appstoreenabled' => false,
  'tempdirectory' => '/tmp/php-cloud',
  'installed' => true,
);

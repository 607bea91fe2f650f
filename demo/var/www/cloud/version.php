<?php
$OC_Version = array(30,0,4,1);
$OC_VersionString = '30.0.4';
$OC_Edition = '';
$OC_Channel = 'stable';
$OC_VersionCanBeUpgradedFrom = array (
  'nextcloud' =>
  array (
    '29.0' => true,
    '30.0' => true,
  ),
  'owncloud' =>
  array (
    '10.13' => true,
  ),
);
$OC_Build = '2024-12-19T14:56:30+00:00 7c3b8bd1a29cd2ab38e02e3c6cb5f0d30caf14bc';
$vendor = 'nextcloud';

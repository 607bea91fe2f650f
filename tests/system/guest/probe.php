<?php
// What one request of a pool's worker can do, as JSON: its pid (the guest reads its
// AppArmor label from /proc/<pid>/attr/current as root), its own view of the label, and
// one read or write of ?path=.
header('Content-Type: application/json');
$op = $_GET['op'] ?? 'label';
$path = $_GET['path'] ?? '';
$out = ['pid' => getmypid()];
$label = @file_get_contents('/proc/self/attr/current');
$out['label'] = $label === false ? null : trim($label, "\0\n");
if ($op === 'read' || $op === 'write') {
    $r = $op === 'read' ? @file_get_contents($path) : @file_put_contents($path, "written\n");
    $out['ok'] = $r !== false;
    $out['data'] = $op === 'read' && $r !== false ? $r : null;
    $out['error'] = $r === false ? (error_get_last()['message'] ?? '') : null;
}
echo json_encode($out);

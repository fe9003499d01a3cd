"""Start/stop/test/reload an nginx instance, optionally inside a namespace.

    n = Nginx(prefix, netns="wgc0-a")
    n.write_conf(build_conf(wgconn=..., http=..., stream=...))
    rc, out = n.test()          # nginx -t
    n.start(); n.wait_port(8080); n.reload(); n.stop()

Configs are text.  with_modules() prepends the load_module lines (Debian's
dynamic ngx_stream_module.so when nginx was built with
--with-stream=dynamic, then build/ngx_wgconn_module.so); build_conf() gives
a complete file with logs, pid and temp paths under the prefix.
"""

import os
import re
import signal
import subprocess
import time

from .netns import HarnessError, pid_alive, run, wait_listening, wait_until

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODULE = os.environ.get("WGC_MODULE",
                        os.path.join(TOP, "build", "ngx_wgconn_module.so"))
NGINX = os.environ.get("WGC_NGINX", "nginx")
STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"

_nginx_v = None


def nginx_V():
    global _nginx_v
    if _nginx_v is None:
        cp = run([NGINX, "-V"], check=False, timeout=10)
        _nginx_v = (cp.stdout or "") + (cp.stderr or "")
    return _nginx_v


def module_available():
    return os.path.exists(MODULE)


def stream_load_line():
    """load_module line for the stream module, or "" if built in/absent."""
    v = nginx_V()
    if "--with-stream=dynamic" in v and os.path.exists(STREAM_MODULE):
        return "load_module %s;\n" % STREAM_MODULE
    return ""


def with_modules(conf, wgconn_module=True, stream=True):
    head = ""
    if stream:
        head += stream_load_line()
    if wgconn_module:
        head += "load_module %s;\n" % MODULE
    return head + conf


def log_level():
    return "debug" if os.environ.get("WGC_DEBUG") == "1" else "info"


def build_conf(wgconn="", http="", stream="", main="", events="",
               workers=1, modules=True):
    """A complete nginx.conf (paths relative to the prefix).

    http / stream are the *contents* of the http {} / stream {} blocks;
    they are omitted when empty.  Returns text; line numbers of the
    returned text are what nginx reports as nginx.conf:LINE.
    """
    parts = [
        "error_log logs/error.log %s;" % log_level(),
        "pid logs/nginx.pid;",
        "worker_processes %s;" % workers,
        "worker_shutdown_timeout 10s;",
    ]
    if main:
        parts.append(main.rstrip())
    parts.append("events {\n    worker_connections 4096;\n%s}" % events)
    if wgconn:
        parts.append(wgconn.rstrip())
    if http:
        parts.append(
            "http {\n"
            "    access_log logs/access.log;\n"
            "    client_body_temp_path tmp/body;\n"
            "    proxy_temp_path tmp/proxy;\n"
            "    fastcgi_temp_path tmp/fastcgi;\n"
            "    uwsgi_temp_path tmp/uwsgi;\n"
            "    scgi_temp_path tmp/scgi;\n"
            "%s\n}" % indent(http))
    if stream:
        parts.append("stream {\n%s\n}" % indent(stream))
    conf = "\n".join(parts) + "\n"
    if modules:
        # the wgconn module holds http and stream halves: it needs the
        # stream module loaded even when no stream {} block is used
        conf = with_modules(conf, stream=True)
    return conf


def indent(text, n=4):
    pad = " " * n
    return "\n".join(pad + ln if ln.strip() else ln
                     for ln in text.strip("\n").splitlines())


def line_of(conf, needle):
    """1-based line number of the first line of conf containing needle."""
    for i, ln in enumerate(conf.splitlines(), 1):
        if needle in ln:
            return i
    raise HarnessError("%r not in config" % needle)


class Nginx:
    def __init__(self, prefix, netns=None, conf=None):
        self.prefix = os.path.abspath(prefix)
        self.netns = netns
        self.proc = None
        for d in ("conf", "logs", "tmp"):
            os.makedirs(os.path.join(self.prefix, d), exist_ok=True)
        os.chmod(self.prefix, 0o755)
        os.chmod(os.path.join(self.prefix, "tmp"), 0o777)
        if conf is not None:
            self.write_conf(conf)

    # -- paths -------------------------------------------------------
    @property
    def conf_path(self):
        return os.path.join(self.prefix, "conf", "nginx.conf")

    @property
    def error_log(self):
        return os.path.join(self.prefix, "logs", "error.log")

    @property
    def access_log(self):
        return os.path.join(self.prefix, "logs", "access.log")

    @property
    def pid_path(self):
        return os.path.join(self.prefix, "logs", "nginx.pid")

    def write_conf(self, text):
        with open(self.conf_path, "w") as f:
            f.write(text)
        self.conf = text

    def _argv(self, *extra):
        argv = [NGINX, "-p", self.prefix + "/", "-c", "conf/nginx.conf",
                "-e", "logs/error.log"] + list(extra)
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns] + argv
        return argv

    # -- commands ----------------------------------------------------
    def test(self, timeout=30.0):
        """nginx -t; returns (rc, combined output)."""
        try:
            cp = subprocess.run(self._argv("-t"), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True,
                                timeout=timeout)
        except subprocess.TimeoutExpired as e:
            return -1, "timeout: %s" % (e.stdout or "")
        return cp.returncode, cp.stdout

    def unreachable_for_workers(self):
        """First ancestor of the prefix that unprivileged workers cannot
        traverse (they need the temp paths), or None."""
        d = self.prefix
        while d and d != "/":
            if not os.stat(d).st_mode & 0o001:
                return d
            d = os.path.dirname(d)
        return None

    def start(self, timeout=15.0, wait_ports=(), daemon=False):
        """nginx in the foreground (daemon off) under our Popen.

        daemon=True starts it as an init script would: nginx forks the
        master and the command returns; the master is then known by its
        pid file.  WGC_VALGRIND=DIR runs it (not as a daemon) under
        valgrind (memcheck; workers and the engine are forks, followed),
        one log per process in DIR/vg.PID.log.
        """
        bad = self.unreachable_for_workers()
        if bad and "\nuser " not in "\n" + getattr(self, "conf", ""):
            raise HarnessError("nginx prefix %s is below %s, which workers "
                               "(unprivileged) cannot traverse" %
                               (self.prefix, bad))
        if os.path.exists(self.pid_path):
            os.unlink(self.pid_path)
        self._log_offset = self.log_size()
        self.daemon = daemon
        if daemon:
            return self._start_daemon(timeout, wait_ports)
        out = open(os.path.join(self.prefix, "logs", "stderr.log"), "a")
        argv = self._argv("-g", "daemon off;")
        vg = os.environ.get("WGC_VALGRIND")
        if vg:
            os.makedirs(vg, exist_ok=True)
            i = argv.index(NGINX)
            argv[i:i] = ["valgrind", "--quiet", "--error-exitcode=99",
                         "--log-file=%s/vg.%%p.log" % vg]
            timeout *= 10
        self.proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
        out.close()

        def up():
            if self.proc.poll() is not None:
                raise HarnessError("nginx exited %s:\n%s" % (
                    self.proc.returncode, self.log_tail()))
            return os.path.exists(self.pid_path)
        return self._wait_started(up, timeout, wait_ports)

    def _wait_started(self, up, timeout, wait_ports):
        """Wait for up() and the ports; stop nginx if either fails."""
        try:
            wait_until(up, timeout, what="nginx pid file")
            for p in wait_ports:
                proto = "tcp"
                if isinstance(p, tuple):
                    p, proto = p
                self.wait_port(p, proto, timeout)
        except Exception:
            self.stop()
            raise
        return self

    def _start_daemon(self, timeout, wait_ports):
        cp = subprocess.run(self._argv(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL, timeout=timeout)
        if cp.returncode != 0:
            raise HarnessError("nginx exited %s:\n%s%s" % (
                cp.returncode, cp.stdout, self.log_tail()))
        return self._wait_started(lambda: self.master_pid and self.running,
                                  timeout, wait_ports)

    def _stop_daemon(self, timeout):
        mp = self.master_pid
        if not mp:
            return None
        procs = set(self.children()) | {self.engine()} - {None}
        for sig, t in ((signal.SIGQUIT, timeout), (signal.SIGTERM, 5),
                       (signal.SIGKILL, 5)):
            try:
                os.kill(mp, sig)
            except ProcessLookupError:
                break
            try:
                wait_until(lambda: not pid_alive(mp), t, what="nginx exit")
                break
            except HarnessError:
                continue
        _kill_leftovers(procs)
        return 0

    @property
    def master_pid(self):
        if self.proc is not None and self.proc.poll() is None:
            return self.proc.pid
        try:
            with open(self.pid_path) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def children(self):
        """pids of the master's children (workers, cache processes and,
        with daemon off, the wgconn engine process)."""
        mp = self.master_pid
        if not mp:
            return []
        try:
            with open("/proc/%d/task/%d/children" % (mp, mp)) as f:
                return [int(x) for x in f.read().split()]
        except OSError:
            return []

    @staticmethod
    def _title(pid):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                return f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return ""

    def workers(self):
        """pids of the worker processes."""
        return [p for p in self.children()
                if "worker process" in self._title(p)]

    def engine(self):
        """pid of the wgconn engine process, or None.  A daemon's first
        engine is forked before nginx daemonizes, so it is no child of the
        master: it is found in the master's network namespace instead."""
        for p in self.children():
            if "wgconn engine" in self._title(p):
                return p
        if getattr(self, "daemon", False) and self.master_pid:
            return self._engine_in_netns()
        return None

    def _engine_in_netns(self):
        try:
            ns = os.readlink("/proc/%d/ns/net" % self.master_pid)
        except OSError:
            return None
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            p = int(d)
            try:
                if (os.readlink("/proc/%d/ns/net" % p) == ns
                        and "wgconn engine" in self._title(p)):
                    return p
            except OSError:
                continue
        return None

    def reload(self, timeout=15.0):
        """SIGHUP; waits until the set of workers changed."""
        old = set(self.workers())
        os.kill(self.master_pid, signal.SIGHUP)
        wait_until(lambda: (set(self.workers()) - old)
                   and self.running, timeout, what="nginx reload")

    def signal(self, sig):
        os.kill(self.master_pid, sig)

    @property
    def running(self):
        if getattr(self, "daemon", False):
            mp = self.master_pid
            return bool(mp) and pid_alive(mp)
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10.0):
        """SIGQUIT (graceful), then SIGTERM, then SIGKILL; returns rc."""
        if getattr(self, "daemon", False):
            return self._stop_daemon(timeout)
        if self.proc is None:
            return None
        children = set(self.children())
        rc = self.proc.poll()
        if rc is None:
            for sig, t in ((signal.SIGQUIT, timeout), (signal.SIGTERM, 5),
                           (signal.SIGKILL, 5)):
                try:
                    self.proc.send_signal(sig)
                except ProcessLookupError:
                    pass
                try:
                    rc = self.proc.wait(t)
                    break
                except subprocess.TimeoutExpired:
                    continue
        _kill_leftovers(children)
        self.proc = None
        return rc

    # -- logs and ports ----------------------------------------------
    def log_size(self):
        try:
            return os.path.getsize(self.error_log)
        except OSError:
            return 0

    def log(self, since_start=False):
        try:
            with open(self.error_log, errors="replace") as f:
                if since_start:
                    f.seek(getattr(self, "_log_offset", 0))
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n=6000):
        return self.log()[-n:]

    def log_grep(self, pattern):
        return re.findall(pattern, self.log(), re.M)

    def alerts(self):
        """[alert]/[crit]/[emerg] lines and worker crashes since start."""
        return [ln for ln in self.log(since_start=True).splitlines()
                if re.search(r"\[(alert|crit|emerg)\]|exited on signal", ln)]

    def wait_port(self, port, proto="tcp", timeout=10.0):
        return wait_listening(self.netns, port, proto, timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _engine_fds(pid):
    return sorted(os.readlink("/proc/%d/fd/%s" % (pid, f))
                  for f in os.listdir("/proc/%d/fd" % pid))


def _rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise HarnessError("no VmRSS for %d" % pid)


def assert_engine_gives_back(nginx, load, workers, linger=0.0,
                             rss_slack_kib=2048, timeout=30.0):
    """Runs load() twice (each a burst of connections across reloads).
    The engine outlives every reload, so once the old workers are gone
    each generation's channel and each flow's socket pair end must have
    been closed: after the second load the engine holds as many
    descriptors as after the first, and its RSS (the first load grew the
    heaps to their working size) has grown by less than rss_slack_kib.
    linger: how long a flow may outlive the load that opened it (a UDP
    session lasts until proxy_timeout)."""
    eng = nginx.engine()
    if not eng:
        raise HarnessError("no engine process")

    def settled():
        return len(nginx.workers()) == workers

    load()
    wait_until(settled, timeout, interval=0.2, what="old workers gone")
    # flows of the first load may still be open: wait for a count that
    # holds for longer than any of them lives
    last, since = None, time.monotonic()
    deadline = since + timeout
    while time.monotonic() < deadline:
        n = len(_engine_fds(eng))
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= linger + 1.0:
            break
        time.sleep(0.1)
    fds, rss = _engine_fds(eng), _rss_kib(eng)

    load()
    if nginx.engine() != eng:
        raise AssertionError("the engine was restarted")
    try:
        wait_until(lambda: settled() and len(_engine_fds(eng)) == len(fds),
                   timeout, interval=0.2,
                   what="the engine's descriptors back to %d" % len(fds))
    except HarnessError:
        raise AssertionError("engine descriptors: %r, were %r"
                             % (_engine_fds(eng), fds))
    grown = _rss_kib(eng) - rss
    assert grown < rss_slack_kib, "engine RSS grew by %d KiB" % grown


def _kill_leftovers(pids):
    """Workers (or an engine) of a master that died hard must not outlive
    the test."""
    for p in pids:
        if pid_alive(p):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass


def wait_log(nginx, pattern, timeout=10.0):
    return wait_until(lambda: re.search(pattern, nginx.log(), re.M),
                      timeout, what="error.log matching %r" % pattern)


def sleep(t):
    time.sleep(t)

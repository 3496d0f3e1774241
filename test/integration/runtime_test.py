#!/usr/bin/env python3
"""Runtime on the real kernel: sandboxes, skiff-shim containers, exec, logs, cleanup.

Drives kubelet/runtime through the test-only skiff-runtime-tool with a busybox rootfs made from
Debian's busybox-static (/bin/busybox + symlinks) in a temp dir. Two containers in one sandbox
must share hostname, network (loopback) and POSIX message queues but not processes or files;
a missing executable gives StartError; exit codes, signals, CRI logs, exec and on_exit work;
after removal nothing is left (mounts, processes, directories). Needs root; skips (77) without.
Only loopback traffic inside the sandbox's own network namespace.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BIN = os.environ.get("SKIFF_BIN", os.path.join(os.path.dirname(__file__), "../../build"))
TOOL = os.path.join(BIN, "skiff-runtime-tool")
SHIM = os.path.join(BIN, "skiff-shim")


def skip(why):
    print("SKIPPED: " + why, flush=True)
    sys.exit(77)


class Checks:
    def __init__(self):
        self.total = 0
        self.failed = 0

    def check(self, desc, ok, detail=""):
        self.total += 1
        print(("ok   - " if ok else "FAIL - ") + desc, flush=True)
        if not ok:
            self.failed += 1
            for line in str(detail)[:3000].splitlines():
                print("       | " + line, flush=True)
        return ok

    def eq(self, desc, got, want):
        return self.check(desc, got == want, "want: %r\ngot:  %r" % (want, got))


def main():
    if os.geteuid() != 0:
        skip("needs root (namespaces, mounts)")
    for f in (TOOL, SHIM):
        if not os.path.exists(f):
            skip(f + " is not built")
    if not os.path.exists("/bin/busybox"):
        skip("/bin/busybox (busybox-static) is not installed")

    tmp = tempfile.mkdtemp(prefix="skiff-runtime-test.")
    cg_parents = []
    c = Checks()
    try:
        run_tests(c, tmp, cg_parents)
    finally:
        cleanup(tmp, cg_parents)
    print("%d/%d checks passed" % (c.total - c.failed, c.total), flush=True)
    sys.exit(1 if c.failed else 0)


def make_rootfs(path):
    os.makedirs(path + "/bin")
    os.makedirs(path + "/etc")
    os.makedirs(path + "/tmp")
    shutil.copy("/bin/busybox", path + "/bin/busybox")
    applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True,
                             timeout=30).stdout.split()
    for a in applets:
        if a != "busybox":
            os.symlink("busybox", path + "/bin/" + a)
    with open(path + "/etc/passwd", "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/tmp:/bin/sh\n")
    with open(path + "/etc/group", "w") as f:
        f.write("root:x:0:\nuser:x:1000:\n")


def cgroup_dirs(name):
    """A test-specific cgroup per container under memory and pids (v1), if mounted."""
    dirs = []
    for ctrl in ("memory", "pids"):
        root = "/sys/fs/cgroup/" + ctrl
        if not os.path.exists(root + "/cgroup.procs"):
            continue
        d = "%s/skiff-test-%d/%s" % (root, os.getpid(), name)
        os.makedirs(d, exist_ok=True)
        dirs.append(d)
    return dirs


def cleanup(tmp, cg_parents):
    # Anything still mounted under tmp (a failed test), deepest first.
    with open("/proc/self/mountinfo") as f:
        mounts = [l.split()[4] for l in f if l.split()[4].startswith(tmp)]
    for m in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", m], timeout=30)
    for ctrl in ("memory", "pids"):
        parent = "/sys/fs/cgroup/%s/skiff-test-%d" % (ctrl, os.getpid())
        if os.path.isdir(parent):
            for child in os.listdir(parent):
                p = os.path.join(parent, child)
                if os.path.isdir(p):
                    kill_cgroup(p)
                    try_rmdir(p)
            try_rmdir(parent)
    shutil.rmtree(tmp, ignore_errors=True)


def kill_cgroup(path):
    try:
        with open(path + "/cgroup.procs") as f:
            for pid in f.read().split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
    except OSError:
        pass


def try_rmdir(path):
    for _ in range(50):
        try:
            os.rmdir(path)
            return
        except OSError:
            time.sleep(0.1)


def run_tests(c, tmp, cg_parents):
    rootfs = tmp + "/rootfs"
    make_rootfs(rootfs)
    hostdata = tmp + "/hostdata"
    os.makedirs(hostdata)
    with open(hostdata + "/greeting", "w") as f:
        f.write("from-the-host\n")
    run_dir, data_dir, log_dir = tmp + "/run", tmp + "/data", tmp + "/logs"
    base = [TOOL, "--run-dir", run_dir, "--data-dir", data_dir, "--shim", SHIM]

    def tool(*args, check=True, input=None):
        r = subprocess.run(base + list(args), capture_output=True, text=True, timeout=60,
                           input=input)
        if check and r.returncode != 0:
            raise RuntimeError("skiff-runtime-tool %s: rc=%d\n%s%s" %
                               (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def start(cid, args, **extra):
        cfg = {"id": cid, "image_layers": [rootfs], "args": args,
               "env": ["PATH=/bin:/usr/bin", "HOME=/root"],
               "log_path": "%s/%s/0.log" % (log_dir, cid)}
        cfg.update(extra)
        path = "%s/%s.json" % (tmp, cid)
        with open(path, "w") as f:
            json.dump(cfg, f)
        return json.loads(tool("start", path).stdout)

    def inspect(cid):
        return json.loads(tool("inspect", cid).stdout)

    def wait_exited(cid, timeout=20):
        deadline = time.time() + timeout
        for _ in range(int(timeout * 20)):
            st = inspect(cid)
            if st["status"] == "Exited" or time.time() > deadline:
                return st
            time.sleep(0.05)
        return inspect(cid)

    def log_of(cid):
        with open("%s/%s/0.log" % (log_dir, cid)) as f:
            return f.read()

    def wait_log(cid, needle, timeout=10):
        deadline = time.time() + timeout
        for _ in range(int(timeout * 20)):
            try:
                if needle in log_of(cid):
                    return True
            except OSError:
                pass
            if time.time() > deadline:
                break
            time.sleep(0.05)
        return False

    # --- sandbox
    sb = json.loads(tool("sandbox-ensure", "pod-uid-1", "web").stdout)
    c.check("sandbox namespaces are nsfs bind mounts",
            all(os.stat(sb[k]).st_ino != 0 for k in ("netns", "ipcns", "utsns")) and
            sum(1 for l in open("/proc/self/mountinfo") if sb["dir"] + "/ns/" in l) == 3)
    sb2 = json.loads(tool("sandbox-ensure", "pod-uid-1", "web").stdout)
    c.eq("ensure() is idempotent (same paths, no new mounts)",
         (sb2, sum(1 for l in open("/proc/self/mountinfo") if sb["dir"] + "/ns/" in l)), (sb, 3))
    with open(sb["etc_hostname"]) as f:
        c.eq("etc/hostname", f.read(), "web\n")
    tool("sandbox-hosts", "pod-uid-1", "web", "10.244.0.7")
    with open(sb["etc_hosts"]) as f:
        hosts = f.read()
    c.check("etc/hosts has localhost, the pod IP line and host aliases",
            "127.0.0.1\tlocalhost" in hosts and "10.244.0.7\tweb\n" in hosts and
            "10.1.2.3\tfoo.local\tbar.local" in hosts, hosts)
    with open(sb["etc_resolv"]) as f:
        resolv = f.read()
    c.check("etc/resolv.conf", "nameserver 10.96.0.10" in resolv and "ndots:5" in resolv, resolv)

    pod_mounts = [
        {"destination": "/etc/hosts", "source": sb["etc_hosts"], "options": ["ro"]},
        {"destination": "/etc/hostname", "source": sb["etc_hostname"], "options": ["ro"]},
        {"destination": "/etc/resolv.conf", "source": sb["etc_resolv"], "options": ["ro"]},
    ]

    # --- c1: a web server on loopback that also leaves a message queue and a private file
    c1 = start("c1", ["sh", "-c",
                      "mkdir -p /www && echo hello-from-c1 > /www/index.html && "
                      "touch /dev/mqueue/q1 && touch /secret-c1 && echo c1-up && "
                      "exec httpd -f -p 127.0.0.1:8080 -h /www"],
               sandbox_dir=sb["dir"], mounts=pod_mounts, cgroup_dirs=cgroup_dirs("c1"))
    c.eq("c1 is running", c1["status"], "Running")
    c.check("c1 says it is up", wait_log("c1", "c1-up"), log_of("c1") if os.path.exists(
        "%s/c1/0.log" % log_dir) else "no log")
    pids_c1 = (c1["pid"], c1["shim_pid"])
    for cg in cgroup_dirs("c1"):
        with open(cg + "/cgroup.procs") as f:
            c.check("c1's init is in its cgroup " + cg.split("/")[4],
                    str(c1["pid"]) in f.read().split())

    # --- c2 in the same sandbox: shares uts/net/ipc, not pid or mount namespaces
    c2 = start("c2", ["sh", "-c",
                      "echo host=$(hostname); "
                      "for i in 1 2 3 4 5 6 7 8 9 10; do "
                      "  wget -q -O - http://127.0.0.1:8080/ && break; sleep 0.2; done; "
                      "echo mq=$(ls /dev/mqueue); "
                      "ls /secret-c1 >/dev/null 2>&1 && echo secret=visible || echo secret=hidden; "
                      "echo pid1=$(cat /proc/1/cmdline | tr '\\0' ' '); "
                      "echo procs=$(ls -d /proc/[0-9]* | wc -l); "
                      "echo httpd_seen=$(ps -o comm | grep -cx httpd); "
                      "cat /data/greeting; touch /data/x 2>/dev/null && echo data=rw || echo data=ro; "
                      "touch /tmp/ok && echo tmp=rw"],
               sandbox_dir=sb["dir"], cgroup_dirs=cgroup_dirs("c2"),
               mounts=pod_mounts + [
                   {"destination": "/data", "source": hostdata, "options": ["ro"]},
                   {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                    "options": ["nosuid", "size=1m"]}])
    st2 = wait_exited("c2")
    out2 = log_of("c2")
    c.eq("c2 completed", (st2["status"], st2["exit_code"], st2["reason"]),
         ("Exited", 0, "Completed"))
    c.check("same hostname in both containers", "host=web" in out2, out2)
    c.check("c2 reaches c1's server on 127.0.0.1:8080", "hello-from-c1" in out2, out2)
    c.check("c2 sees c1's POSIX message queue", "mq=q1" in out2, out2)
    c.check("c2 does not see c1's files", "secret=hidden" in out2, out2)
    c.check("c2's PID 1 is its own command", "pid1=sh -c echo host" in out2, out2)
    c.check("c2 does not see c1's processes", "httpd_seen=0" in out2, out2)
    c.check("read-only bind mount of a host dir", "from-the-host" in out2 and "data=ro" in out2,
            out2)
    c.check("tmpfs mount", "tmp=rw" in out2, out2)
    c.check("logs are in the CRI format",
            re.search(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z stdout F host=web$", out2, re.M),
            out2)
    c.check("c2 left no file on the host", not os.path.exists(hostdata + "/x"))

    # --- exec into c1
    r = tool("exec", "c1", "--", "hostname", check=False)
    c.eq("exec hostname", (r.returncode, r.stdout.strip()), (0, "web"))
    r = tool("exec", "c1", "--", "sh", "-c", "echo to-stderr >&2; exit 5", check=False)
    c.eq("exec relays the exit code and stderr", (r.returncode, r.stderr.strip()),
         (5, "to-stderr"))
    r = tool("exec", "c1", "--", "cat", "/proc/1/cmdline", check=False)
    c.check("exec runs in the container's PID namespace (PID 1 is httpd)",
            r.returncode == 0 and r.stdout.startswith("httpd"), r.stdout + r.stderr)
    r = tool("exec", "c1", "--", "nope", check=False)
    c.check("exec of a missing command: 127 and the reason",
            r.returncode == 127 and "executable file not found" in r.stderr, r.stderr)
    r = tool("exec", "c1", "--stdin", "--", "sh", "-c", "tr a-z A-Z", check=False,
             input="piped input\n")
    c.eq("exec with stdin", (r.returncode, r.stdout), (0, "PIPED INPUT\n"))
    r = tool("exec", "c1", "--tty", "--", "sh", "-c", "test -t 0 && test -t 1 && echo tty-ok",
             check=False)
    c.check("exec with a tty", r.returncode == 0 and "tty-ok" in r.stdout, r.stdout + r.stderr)
    r = tool("exec", "c1", "--", "sh", "-c", "grep CapEff /proc/self/status; "
             "mount -t tmpfs none /mnt 2>&1; echo mount_rc=$?", check=False)
    c.check("exec'd processes get the default capabilities and the seccomp filter",
            "CapEff:\t00000000a80425fb" in r.stdout and "mount_rc=0" not in r.stdout, r.stdout)

    # --- start errors, exit codes, signals, users
    c3 = start("c3", ["nope"], sandbox_dir=sb["dir"])
    c.eq("missing executable: StartError",
         (c3["status"], c3["reason"], c3["exit_code"], c3["message"]),
         ("Exited", "StartError", 128, 'exec: "nope": executable file not found in $PATH'))
    c4 = start("c4", ["sh", "-c", "id -u; grep CapEff /proc/self/status; echo oops >&2; exit 3"],
               uid=1000, gid=1000)
    st4 = wait_exited("c4")
    c.eq("exit code 3 -> Error", (st4["exit_code"], st4["reason"], st4["signal"]), (3, "Error", 0))
    out4 = log_of("c4")
    c.check("runs as uid 1000 with no effective capabilities",
            "stdout F 1000" in out4 and "CapEff:\t0000000000000000" in out4, out4)
    c.check("stderr is logged as stderr", re.search(r"Z stderr F oops$", out4, re.M), out4)

    c5 = start("c5", ["sleep", "1000"])
    c.eq("c5 runs", c5["status"], "Running")
    waiter = subprocess.Popen(base + ["wait-exit", "c5", "20000"], stdout=subprocess.PIPE,
                              text=True)
    ready = waiter.stdout.readline().strip()
    # PID 1 of a PID namespace ignores signals it has no handler for (SIGTERM to `sleep`), as
    # in Kubernetes; SIGKILL always works.
    tool("signal", "c5", "9")
    st5 = wait_exited("c5")
    c.eq("SIGKILL: exit code 137, signal 9, not OOMKilled",
         (st5["exit_code"], st5["signal"], st5["reason"], st5["oom_killed"]),
         (137, 9, "Error", False))
    try:
        rc = waiter.wait(timeout=25)
    except subprocess.TimeoutExpired:
        waiter.kill()
        rc = -1
    c.eq("on_exit fires for the exited container", (ready, rc), ("watching", 0))
    c.check("the shim has gone after the exit", not pid_alive(c5["shim_pid"]))

    big = start("c6", ["sh", "-c", "head -c 40000 /dev/zero | tr '\\0' x; echo; echo end"])
    wait_exited("c6")
    lines = log_of("c6").splitlines()
    tags = [l.split(" ")[2] for l in lines]
    c.eq("a 40000-byte line is logged as P, P, F", tags[:4], ["P", "P", "F", "F"])

    listed = {s["id"]: s["status"] for s in json.loads(tool("list").stdout)}
    c.eq("list shows every container",
         listed, {"c1": "Running", "c2": "Exited", "c3": "Exited", "c4": "Exited",
                  "c5": "Exited", "c6": "Exited"})

    # --- removal: nothing left
    for cid in ("c1", "c2", "c3", "c4", "c5", "c6"):
        tool("remove", cid)
    r = tool("remove", "c1", check=False)
    c.eq("remove is idempotent", r.returncode, 0)
    c.check("c1's process and shim are gone",
            not pid_alive(pids_c1[0]) and not pid_alive(pids_c1[1]), str(pids_c1))
    tool("sandbox-remove", "pod-uid-1")
    tool("sandbox-remove", "pod-uid-1")
    with open("/proc/self/mountinfo") as f:
        left = [l for l in f if tmp in l]
    c.eq("no mount left under the test dir", left, [])
    c.eq("no container or sandbox dir left",
         (os.listdir(run_dir + "/containers"), os.listdir(data_dir + "/containers"),
          os.listdir(run_dir + "/pods")), ([], [], []))
    c.check("logs stay after removal", os.path.exists(log_dir + "/c2/0.log"))


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


if __name__ == "__main__":
    main()

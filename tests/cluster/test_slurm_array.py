#!/usr/bin/python3
"""The Slurm recipe, for real: starts a one-node Slurm on localhost (munged,
slurmctld, slurmd, all in a temporary directory, as in
shared/notes/slurm-local.md), submits contrib/slurm/imgpar-array.sbatch as a
4-task job array over a generated batch, waits for it, and checks that every
output exists exactly once (across the shard reports) and the output tree is
byte-identical to a single-machine run. Then stops every daemon it started,
by pid, and removes the directory.

Needs root and the packages slurmctld slurmd slurm-client munge (the
README's set-up installs them): without them the test FAILS. tests/run.sh
runs it; alone: `meson test -C build --suite cluster`.

usage: test_slurm_array.py IMGPAR SOURCE_ROOT
"""
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

PACKAGES = "slurmctld slurmd slurm-client munge"
TASKS = 4


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree(d):
    out = {}
    for dirpath, _, files in os.walk(d):
        for f in files:
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, d)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def fnv1a64(data):
    h = 14695981039346656037
    for b in data:
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


class Cluster:
    """munged + slurmctld + slurmd under one directory; stop() kills by pid."""

    def __init__(self, d):
        self.d = d
        self.procs = []   # (name, Popen), in start order
        self.env = dict(os.environ, SLURM_CONF=os.path.join(d, "slurm.conf"))

    def start(self, name, argv):
        log = open(os.path.join(self.d, "log", name + ".stdout"), "wb")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                             close_fds=True, start_new_session=True, env=self.env)
        log.close()
        self.procs.append((name, p))
        return p

    def log_tail(self):
        text = []
        for name in sorted(os.listdir(os.path.join(self.d, "log"))):
            with open(os.path.join(self.d, "log", name), "rb") as f:
                data = f.read()[-1500:].decode("utf-8", "replace")
            text.append("--- %s ---\n%s" % (name, data))
        return "\n".join(text)

    def setup(self):
        d = self.d
        os.chmod(d, 0o755)               # munged refuses a socket path it cannot traverse
        for sub, mode in (("munge", 0o700), ("run", 0o755), ("state", 0o755), ("spool", 0o755),
                          ("log", 0o755), ("jobs", 0o755)):
            os.makedirs(os.path.join(d, sub))
            os.chmod(os.path.join(d, sub), mode)
        key = os.path.join(d, "munge", "munge.key")
        p = subprocess.run(["mungekey", "--create", "--keyfile", key], capture_output=True, text=True)
        check(p.returncode == 0, "mungekey failed: %s" % p.stderr)
        sock = os.path.join(d, "run", "munge.sock")
        self.start("munged", ["munged", "-F", "--socket", sock, "--key-file", key,
                              "--pid-file", os.path.join(d, "run", "munged.pid"),
                              "--seed-file", os.path.join(d, "munge", "seed"),
                              "--log-file", os.path.join(d, "log", "munged.log")])
        deadline = time.monotonic() + 10
        while not os.path.exists(sock):
            check(time.monotonic() < deadline and self.procs[-1][1].poll() is None,
                  "munged did not start\n" + self.log_tail())
            time.sleep(0.05)

        hw = subprocess.run(["slurmd", "-C"], capture_output=True, text=True).stdout
        node = [line for line in hw.splitlines() if line.startswith("NodeName=")]
        check(node, "slurmd -C printed no NodeName line: %r" % hw)
        self.node = node[0].split()[0].split("=", 1)[1]
        conf = "\n".join([
            "ClusterName=imgpartest",
            "SlurmctldHost=%s(127.0.0.1)" % self.node,
            "SlurmUser=root",
            "SlurmdUser=root",
            "SlurmctldPort=%d" % free_port(),
            "SlurmdPort=%d" % free_port(),
            "AuthType=auth/munge",
            "CredType=cred/munge",
            "AuthInfo=socket=%s" % sock,
            "StateSaveLocation=%s" % os.path.join(d, "state"),
            "SlurmdSpoolDir=%s" % os.path.join(d, "spool"),
            "SlurmctldPidFile=%s" % os.path.join(d, "run", "slurmctld.pid"),
            "SlurmdPidFile=%s" % os.path.join(d, "run", "slurmd.pid"),
            "SlurmctldLogFile=%s" % os.path.join(d, "log", "slurmctld.log"),
            "SlurmdLogFile=%s" % os.path.join(d, "log", "slurmd.log"),
            "PlugStackConfig=%s" % os.path.join(d, "plugstack.conf"),
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "MpiDefault=none",
            "ReturnToService=2",
            "MinJobAge=4",
            "SchedulerParameters=batch_sched_delay=0",
            node[0] + " NodeAddr=127.0.0.1 State=UNKNOWN",
            "PartitionName=imgpar Nodes=%s Default=YES MaxTime=INFINITE State=UP" % self.node,
        ]) + "\n"
        with open(os.path.join(d, "slurm.conf"), "w") as f:
            f.write(conf)
        open(os.path.join(d, "plugstack.conf"), "w").close()
        conf_path = os.path.join(d, "slurm.conf")
        self.start("slurmctld", ["slurmctld", "-D", "-i", "-f", conf_path])
        self.start("slurmd", ["slurmd", "-D", "-N", self.node, "-f", conf_path])
        deadline = time.monotonic() + 30
        state = ""
        while time.monotonic() < deadline:
            for name, p in self.procs:
                check(p.poll() is None, "%s exited with %s\n%s" % (name, p.returncode, self.log_tail()))
            p = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, env=self.env)
            state = p.stdout.strip()
            if state == "idle":
                return
            time.sleep(0.2)
        raise Fail("the node never became idle (sinfo: %r)\n%s" % (state, self.log_tail()))

    def stop(self):
        for name, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for name, p in reversed(self.procs):
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []


def make_batch(root, n=48):
    rels = []
    for i in range(n):
        rel = "set%d/%s%03d.%s" % (i % 3, "deep/" if i % 4 == 0 else "", i, "jpg" if i % 5 == 0 else "png")
        rng = np.random.default_rng(i)
        arr = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.fromarray(arr).save(path, format="JPEG" if rel.endswith("jpg") else "PNG")
        rels.append(rel)
    return rels


def run(imgpar, source):
    missing = [p for p in ("slurmctld", "slurmd", "sbatch", "sinfo", "munged", "mungekey") if not shutil.which(p)]
    check(not missing, "missing %s: apt-get install -y --no-install-recommends %s" % (" ".join(missing), PACKAGES))
    check(os.geteuid() == 0, "the one-node Slurm of this test runs as root (SlurmUser=root)")
    script = os.path.join(source, "contrib", "slurm", "imgpar-array.sbatch")
    d = tempfile.mkdtemp(prefix="imgpar-slurm-")
    cluster = Cluster(d)
    try:
        t0 = time.monotonic()
        cluster.setup()
        print("slurm up in %.1f s" % (time.monotonic() - t0))
        src = os.path.join(d, "in")
        rels = make_batch(src)
        ref = os.path.join(d, "ref")
        p = subprocess.run([imgpar, "-r", src, ref], capture_output=True, text=True, timeout=120)
        check(p.returncode == 0, "single-machine run failed: %s" % p.stderr)
        want = tree(ref)
        check(len(want) == len(rels), "reference run wrote %d of %d" % (len(want), len(rels)))

        out = os.path.join(d, "out")
        reports = os.path.join(d, "reports")
        env = dict(cluster.env, IMGPAR=imgpar, IMGPAR_REPORT_DIR=reports)
        t1 = time.monotonic()
        p = subprocess.run(["sbatch", "--wait", "--array=0-%d" % (TASKS - 1), "--cpus-per-task=1",
                            "--chdir=%s" % d, "--output=%s" % os.path.join(d, "jobs", "job-%A_%a.out"),
                            script, "-r", src, out], capture_output=True, text=True, env=env, timeout=180)
        print("job array: %.1f s: %s" % (time.monotonic() - t1, p.stdout.strip()))
        logs = ""
        for name in sorted(os.listdir(os.path.join(d, "jobs"))):
            with open(os.path.join(d, "jobs", name)) as f:
                logs += "--- %s ---\n%s" % (name, f.read())
        check(p.returncode == 0, "sbatch --wait exited %d: %s%s\n%s\n%s" % (p.returncode, p.stdout, p.stderr,
                                                                               logs, cluster.log_tail()))
        check(len(os.listdir(os.path.join(d, "jobs"))) == TASKS, "not %d task logs:\n%s" % (TASKS, logs))

        got = tree(out)
        check(sorted(got) == sorted(want), "outputs of the array %s differ from a single run's %s"
              % (sorted(got)[:5], sorted(want)[:5]))
        diff = [k for k in want if got[k] != want[k]]
        check(not diff, "outputs not byte-identical to a single-machine run: %s" % diff)

        seen = []
        for k in range(TASKS):
            rep = os.path.join(reports, "shard-%d-of-%d.jsonl" % (k, TASKS))
            check(os.path.exists(rep), "no report from task %d\n%s" % (k, logs))
            with open(rep) as f:
                recs = [json.loads(line) for line in f]
            for x in recs:
                check(x["status"] == "ok", "task %d: %s" % (k, x))
                rel = os.path.relpath(x["path"], src)
                check(fnv1a64(rel.encode()) % TASKS == k, "%s ran in task %d" % (rel, k))
                seen.append(os.path.relpath(x["output"], out))
        check(sorted(seen) == sorted(want), "outputs written not exactly once: %d records for %d outputs, "
              "%d distinct" % (len(seen), len(want), len(set(seen))))
        check(all(any(fnv1a64(r.encode()) % TASKS == k for r in rels) for k in range(TASKS)),
              "some task had nothing to do: a weak test")
    finally:
        cluster.stop()
        shutil.rmtree(d, ignore_errors=True)


def main():
    # meson's timeout sends SIGTERM: still stop the daemons.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    imgpar = os.path.abspath(sys.argv[1])
    source = os.path.abspath(sys.argv[2])
    t0 = time.monotonic()
    try:
        run(imgpar, source)
    except Fail as e:
        print("FAIL %s" % e)
        sys.exit(1)
    print("ok   slurm job array over %d tasks, %.1f s in all" % (TASKS, time.monotonic() - t0))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Runs a libFuzzer target for the 'fuzz' suite.

usage: fuzz_run.py replay TARGET DIR...
         Runs TARGET once on every file of the DIRs (crash regressions and
         seeds): each must pass its invariants. Fails if there is no file.
       fuzz_run.py smoke TARGET RUNS SECONDS DIR...
         Fuzzes RUNS inputs (at most SECONDS) from the DIRs' files (read
         only: new inputs go to a temporary corpus) with a fixed seed,
         IMGPAR_FUZZ_SEED or 1, then prints the executions and coverage.
         With a fixed seed (and no comparison tracing or corpus reloading,
         which make a seeded run drift) the inputs tried are the same on
         every run (a run cut short by SECONDS tries a prefix of them), so a
         CI run cannot fail on a new find: new bugs are for the long runs of
         README.md (IMGPAR_FUZZ_SEED=0: a random seed). Fails on any
         crash, leak, timeout or too few executions; a crash input is kept
         in the build directory (printed).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile


def files_of(dirs):
    """Every file under dirs, in a fixed order: dirs as given, each tree
    walked in name order (not in the file system's directory order)."""
    out = []
    for d in dirs:
        for root, subdirs, names in os.walk(d):
            subdirs.sort()
            out += [os.path.join(root, n) for n in sorted(names)]
    return out


def main():
    mode, target = sys.argv[1], os.path.abspath(sys.argv[2])
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1:allocator_may_return_null=1")
    env.setdefault("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
    name = os.path.basename(target)
    if mode == "replay":
        files = [f for f in files_of(sys.argv[3:]) if os.path.getsize(f) <= (1 << 20)]
        if not files:
            sys.exit("FAIL: no inputs to replay in %s" % sys.argv[3:])
        # libFuzzer runs each file given as an argument once; in batches to
        # keep command lines short.
        for i in range(0, len(files), 200):
            p = subprocess.run([target, "-rss_limit_mb=2048", "-malloc_limit_mb=256", "-timeout=20"] + files[i:i + 200],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=600)
            if p.returncode != 0:
                print(p.stdout.decode("utf-8", "replace")[-6000:])
                sys.exit("FAIL: %s failed on one of %s" % (name, files[i:i + 200]))
        print("ok: %s replayed %d inputs" % (name, len(files)))
        return
    if mode != "smoke":
        sys.exit("unknown mode %s" % mode)
    runs, seconds = int(sys.argv[3]), int(sys.argv[4])
    seed = int(os.environ.get("IMGPAR_FUZZ_SEED", "1"))
    seeds = [d for d in sys.argv[5:] if os.path.isdir(d)]   # a target may have no regressions yet
    work = tempfile.mkdtemp(prefix="imgpar-fuzz-%s-" % name, dir="/tmp")
    corpus = os.path.join(work, "corpus")
    os.makedirs(corpus)
    crashes = os.path.join(os.path.dirname(target), "fuzz-artifacts")
    os.makedirs(crashes, exist_ok=True)
    # The seeds go in as a list in a fixed order, not as directories:
    # libFuzzer keeps directory order for seeds of equal size, and that
    # order differs between file systems and machines. They are copied
    # under names of one length in the temporary directory, because even
    # the lengths of their paths shift the heap and with it the run.
    copies = os.path.join(work, "s")
    os.makedirs(copies)
    listed = []
    for i, path in enumerate(files_of(seeds)):
        listed.append(os.path.join(copies, "%06d" % i))
        shutil.copyfile(path, listed[-1])
    seed_list = os.path.join(work, "seeds")
    with open(seed_list, "w") as f:
        f.write(",".join(listed))
    cmd = ["./" + name, corpus, "-seed_inputs=@" + seed_list, "-shuffle=0",
        "-seed=%d" % seed, "-runs=%d" % runs, "-max_total_time=%d" % seconds,
        # Without these a fixed seed still drifts from run to run: comparison
        # tracing feeds heap addresses (which ASLR moves) into the mutations,
        # and reloading the corpus directory depends on timing.
        "-use_cmp=0", "-reload=0", "-timeout=20", "-rss_limit_mb=2048", "-malloc_limit_mb=256",
        "-max_len=65536",
        "-print_final_stats=1", "-artifact_prefix=fuzz-artifacts/%s-" % name]
    # The same environment, argument lengths and working directory on every
    # machine: they set where the stack starts within its page, and some
    # paths branch on alignment, which changes the coverage libFuzzer sees
    # and so the inputs it tries next.
    fixed_env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C",
                 "ASAN_OPTIONS": env["ASAN_OPTIONS"], "UBSAN_OPTIONS": env["UBSAN_OPTIONS"]}
    # And without address space randomisation where the system allows it:
    # the stb target's path through the inputs still depends on where the
    # heap lands (how, not found: ASan reports nothing).
    noaslr = ["setarch", os.uname().machine, "-R"]
    try:
        if subprocess.run(noaslr + ["true"], capture_output=True).returncode == 0:
            cmd = noaslr + cmd
        else:
            noaslr = None
    except OSError:
        noaslr = None
    p = subprocess.run(cmd, env=fixed_env, cwd=os.path.dirname(target),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=seconds + 300)
    log = p.stdout.decode("utf-8", "replace")
    shutil.rmtree(work, ignore_errors=True)
    execs = re.search(r"stat::number_of_executed_units:\s*(\d+)", log)
    cov = re.findall(r"cov: (\d+) ft: (\d+)", log)
    if p.returncode != 0:
        print(log[-8000:])
        sys.exit("FAIL: %s: exit %d (crash inputs under %s)" % (name, p.returncode, crashes))
    if not execs or int(execs.group(1)) < 100:
        print(log[-4000:])
        sys.exit("FAIL: %s: too few executions" % name)
    aslr = "" if noaslr else " (ASLR on: setarch -R refused)"
    print("ok: %s: seed %d%s, %s executions (of %d, at most %d s), coverage %s edges, %s features" % (
        name, seed, aslr, execs.group(1), runs, seconds, cov[-1][0] if cov else "?", cov[-1][1] if cov else "?"))


if __name__ == "__main__":
    main()

"""Tests of `imgpar bench`'s own logic on tiny inputs.

usage: test_bench.py IMGPAR SAMPLES

Each case runs the bench with one measured run per configuration and no
warm-up (unless the case is about them), with TMPDIR pointing at a directory
of its own so that a scratch directory left behind is seen. The numbers are
checked against each other (speedups recomputed from the run times in the
JSON, the CSV against the JSON), never against expected timings.
"""
import csv
import io
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET

IMGPAR = os.path.abspath(sys.argv[1])
SAMPLES = os.path.abspath(sys.argv[2])
TMP = tempfile.mkdtemp(prefix="imgpar-bench-test-")
SVG_NS = "{http://www.w3.org/2000/svg}"


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


_n = 0


def fresh(name):
    global _n
    _n += 1
    d = os.path.join(TMP, "%s-%d" % (name, _n))
    os.makedirs(d)
    return d


def bench(*args, scratch=None, env_extra=None, timeout=60):
    """Runs imgpar bench with TMPDIR=scratch; returns (rc, stdout, stderr)."""
    env = dict(os.environ)
    env.pop("IMGPAR_BENCH_CORRUPT_REFERENCE", None)
    if scratch:
        env["TMPDIR"] = scratch
    if env_extra:
        env.update(env_extra)
    p = subprocess.run([IMGPAR, "bench", "--no-progress"] + list(args), env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def assert_scratch_clean(scratch):
    left = os.listdir(scratch)
    check(not left, "scratch directory left behind in %s: %s" % (scratch, left))


def read_csv(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    meta = {}
    body = []
    for line in lines:
        if line.startswith("#"):
            if ": " in line:
                k, v = line[2:].split(": ", 1)
                meta[k] = v
        else:
            body.append(line)
    return meta, list(csv.DictReader(io.StringIO("\n".join(body))))


def close(a, b, rel=1e-6):
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


def check_json_arithmetic(doc):
    confs = doc["configurations"]
    by_key = {(c["strategy"], c["split"], c["jobs"]): c for c in confs}
    for c in confs:
        measured = [r["wall_s"] for r in c["runs"] if not r["warmup"] and r["status"] == 0]
        check(measured, "no measured run in %r" % (c,))
        med = statistics.median(measured)
        check(close(c["median_s"], med), "median_s %r != median of runs %r" % (c["median_s"], med))
        check(close(c["min_s"], min(measured)), "min_s wrong in %r" % (c,))
        one = by_key[(c["strategy"], c["split"], 1)]
        one_med = statistics.median([r["wall_s"] for r in one["runs"] if not r["warmup"]])
        s = one_med / med
        check(close(c["speedup"], s), "%s/%s j=%d: speedup %r != time(j=1)/time(j) = %r"
              % (c["strategy"], c["split"], c["jobs"], c["speedup"], s))
        check(close(c["efficiency"], s / c["jobs"]), "efficiency wrong in %r" % (c,))
        if c["jobs"] == 1:
            check(c["karp_flatt"] is None, "Karp-Flatt must be undefined (null) at j=1")
        else:
            p = c["jobs"]
            kf = (1 / s - 1 / p) / (1 - 1 / p)
            check(close(c["karp_flatt"], kf), "Karp-Flatt %r != %r" % (c["karp_flatt"], kf))
        ser = by_key.get(("serial", c["split"], 1))
        if ser:
            check(close(c["speedup_vs_serial"], ser["median_s"] / med), "speedup_vs_serial wrong")
        check(c["images_per_s"] > 0 and close(c["images_per_s"], c["images"] / med),
              "images_per_s wrong in %r" % (c,))
        check(close(c["mp_per_s"], c["megapixels"] / med, 1e-5), "mp_per_s wrong")
        check(set(c["busy_s"]) == {"read", "decode", "filter", "encode", "write", "wait_load",
                                   "wait_filter", "wait_write"}, "busy_s stages: %r" % (c["busy_s"],))
        check(c["peak_rss_kb"] > 0, "no peak RSS for %r" % (c,))
        cpus = [r["cpu_s"] for r in c["runs"] if not r["warmup"] and r["status"] == 0]
        check(all(x >= 0 for x in cpus) and close(c["median_cpu_s"], statistics.median(cpus)),
              "median_cpu_s wrong in %r" % (c,))
        if c["strategy"] == "procs":
            check(c["worker_peak_rss_kb"] > 0, "procs without a worker RSS")
        # Memory target: pixels in flight (the most over every run) + 64 MiB.
        pix = [r["peak_pixel_bytes"] for r in c["runs"]]
        check(c["peak_pixel_bytes"] == max(pix), "peak_pixel_bytes %r, runs %r" % (c["peak_pixel_bytes"], pix))
        check(min(pix) >= largest_pixels(), "a run had %d pixel bytes in flight, less than the largest "
              "sample's %d pixels" % (min(pix), largest_pixels()))
        check(c["mem_bound_kb"] == c["peak_pixel_bytes"] // 1024 + 64 * 1024, "mem_bound_kb wrong in %r" % (c,))
        check(c["within_mem_bound"] == (c["peak_rss_kb"] <= c["mem_bound_kb"]), "within_mem_bound wrong")


def largest_pixels():
    """width * height of the largest sample: a lower bound on the bytes
    any run must have had in the arena at once."""
    from PIL import Image
    best = 0
    for n in os.listdir(SAMPLES):
        try:
            with Image.open(os.path.join(SAMPLES, n)) as im:
                best = max(best, im.width * im.height)
        except OSError:
            pass
    check(best > 0, "no readable sample in %s" % SAMPLES)
    return best


def case_full_matrix():
    """serial,threads,procs x image,strips x 1,2: every configuration in CSV,
    JSON and SVG; speedups recomputed; scratch removed; exit 0."""
    scratch = fresh("scratch")
    out = fresh("out")
    j, c, s = (os.path.join(out, n) for n in ("b.json", "b.csv", "b.svg"))
    rc, so, se = bench("--strategies", "serial,threads,procs", "--split", "image,strips",
                       "--jobs", "1,2", "--repeat", "1", "--warmup", "0",
                       "--json", j, "--csv", c, "--svg", s, SAMPLES, scratch=scratch)
    check(rc == 0, "exit %d\n%s\n%s" % (rc, so, se))
    assert_scratch_clean(scratch)
    with open(j, encoding="utf-8") as f:
        doc = json.load(f)
    want = {("serial", "image", 1), ("serial", "strips", 1)}
    for st in ("threads", "procs"):
        for sp in ("image", "strips"):
            for jj in (1, 2):
                want.add((st, sp, jj))
    got = [(x["strategy"], x["split"], x["jobs"]) for x in doc["configurations"]]
    check(len(got) == len(set(got)), "duplicate configurations: %r" % got)
    check(set(got) == want, "configurations %r, wanted %r" % (sorted(got), sorted(want)))
    for x in doc["configurations"]:
        check(len(x["runs"]) == 1 and not x["runs"][0]["warmup"], "one measured run each: %r" % x)
        check(x["mismatches"] == 0 and x["status"] == 0, "run failed: %r" % x)
        check(x["oversubscribed"] == (x["jobs"] > doc["machine"]["online_cpus"]), "oversubscribed flag")
    check(doc["ok"] is True and doc["mismatches"] == 0, "bench not ok")
    check_json_arithmetic(doc)
    m = doc["machine"]
    for k in ("cpu_model", "online_cpus", "mem_bytes", "kernel", "compiler", "libpng", "libjpeg", "imgpar"):
        check(m.get(k) not in (None, "", 0), "machine.%s missing: %r" % (k, m))
    nref = len(doc["reference"]["outputs"])
    check(nref == doc["workload"]["inputs"] and nref >= 5, "reference outputs: %d" % nref)
    check(all(o["present"] and len(o["fnv1a64"]) == 16 for o in doc["reference"]["outputs"]),
          "reference checksums")
    # The reference checksum is FNV-1a 64 of the output: recompute one
    # by running imgpar itself the same way.
    outdir = fresh("plain")
    first = doc["reference"]["outputs"][0]
    p = subprocess.run([IMGPAR, "--serial", "-j1", first["input"], outdir], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    check(p.returncode == 0, "plain run failed: %s" % p.stderr)
    h = 0xcbf29ce484222325
    with open(os.path.join(outdir, first["output"]), "rb") as f:
        for byte in f.read():
            h = ((h ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    check("%016x" % h == first["fnv1a64"], "FNV-1a of %s: %016x != %s" % (first["output"], h, first["fnv1a64"]))

    # CSV: the same configurations, the same run times.
    meta, rows = read_csv(c)
    for k in ("cpu_model", "online_cpus", "kernel", "compiler", "libpng", "libjpeg"):
        check(k in meta, "CSV lacks '# %s'" % k)
    csv_keys = {(r["strategy"], r["split"], int(r["jobs"])) for r in rows}
    check(csv_keys == want, "CSV configurations %r" % sorted(csv_keys))
    check(len(rows) == len(want), "CSV: one row per run, got %d" % len(rows))
    by = {(x["strategy"], x["split"], x["jobs"]): x for x in doc["configurations"]}
    for r in rows:
        x = by[(r["strategy"], r["split"], int(r["jobs"]))]
        check(close(float(r["wall_s"]), x["runs"][0]["wall_s"]), "CSV wall_s != JSON")
        check(close(float(r["cpu_s"]), x["runs"][0]["cpu_s"]), "CSV cpu_s != JSON")
        check(close(float(r["speedup"]), x["speedup"]), "CSV speedup != JSON")
        check(r["karp_flatt"] == "" if x["jobs"] == 1 else close(float(r["karp_flatt"]), x["karp_flatt"]),
              "CSV karp_flatt")
        for stage in ("read", "decode", "filter", "encode", "write", "wait_load", "wait_filter", "wait_write"):
            check(stage + "_s" in r, "CSV lacks %s_s" % stage)
        check(int(r["peak_pixel_bytes"]) == x["peak_pixel_bytes"] and int(r["mem_bound_kb"]) == x["mem_bound_kb"]
              and int(r["run_peak_pixel_bytes"]) == x["runs"][0]["peak_pixel_bytes"], "CSV memory columns != JSON")

    # SVG: well-formed, one series path per strategy (and split), the ideal line, axes text.
    root = ET.parse(s).getroot()
    check(root.tag == SVG_NS + "svg", "root is %s" % root.tag)
    series = [e for e in root.iter(SVG_NS + "path") if e.get("class") == "series"]
    strategies = {e.get("data-strategy") for e in series}
    check(strategies == {"serial", "threads", "procs"}, "series paths for %r" % strategies)
    check(len(series) == 6, "one path per strategy and split: %d" % len(series))
    for e in series:
        check(e.get("d", "").startswith("M "), "empty series path")
    check(any(e.get("class") == "ideal" for e in root.iter(SVG_NS + "path")), "no ideal line")
    texts = " ".join((e.text or "") for e in root.iter(SVG_NS + "text"))
    for word in ("jobs (-j)", "speedup", "decode", "encode", "filter"):
        check(word in texts, "SVG lacks the label %r" % word)
    bars = [e for e in root.iter(SVG_NS + "g") if e.get("class") == "bar"]
    check(len(bars) == 6, "a stage bar per series: %d" % len(bars))

    # The table on stdout.
    for word in ("strategy", "median s", "speedup", "K-F", "serial", "threads", "procs", "check: all"):
        check(word in so, "table lacks %r:\n%s" % (word, so))


def case_warmup_median():
    """Warm-ups are flagged and left out of min/median; median of an even count."""
    scratch = fresh("scratch")
    j = os.path.join(fresh("out"), "b.json")
    rc, so, se = bench("--strategies", "threads", "--split", "image", "--jobs", "1,2",
                       "--repeat", "2", "--warmup", "1", "--json", j, SAMPLES, scratch=scratch)
    check(rc == 0, "exit %d\n%s" % (rc, se))
    assert_scratch_clean(scratch)
    with open(j, encoding="utf-8") as f:
        doc = json.load(f)
    check(len(doc["configurations"]) == 2, "two configurations")
    for x in doc["configurations"]:
        flags = [r["warmup"] for r in x["runs"]]
        check(flags == [True, False, False], "warm-up flags %r" % flags)
    check_json_arithmetic(doc)


def case_corrupt_reference():
    """A spoiled reference checksum is a mismatch: exit 1, reported, scratch removed."""
    scratch = fresh("scratch")
    j = os.path.join(fresh("out"), "b.json")
    rc, so, se = bench("--strategies", "serial,threads", "--split", "image", "--jobs", "1,2",
                       "--repeat", "1", "--warmup", "0", "--json", j, SAMPLES, scratch=scratch,
                       env_extra={"IMGPAR_BENCH_CORRUPT_REFERENCE": "1"})
    check(rc == 1, "exit %d (wanted 1)\n%s\n%s" % (rc, so, se))
    check("mismatch" in se.lower(), "no mismatch on stderr:\n%s" % se)
    check("MISMATCH" in so and "check: FAILED" in so, "table does not show the mismatch:\n%s" % so)
    assert_scratch_clean(scratch)
    with open(j, encoding="utf-8") as f:
        doc = json.load(f)
    check(doc["ok"] is False and doc["mismatches"] == len(doc["configurations"]),
          "every run must mismatch once: %r" % doc["mismatches"])


def case_oversubscribed_and_stdout_svg():
    """j above the online CPUs is run and marked; --svg - goes to stdout alone."""
    scratch = fresh("scratch")
    n = os.cpu_count() or 1
    rc, so, se = bench("--strategies", "threads", "--split", "image", "--jobs", str(n + 1),
                       "--repeat", "1", "--warmup", "0", "--svg", "-", SAMPLES, scratch=scratch)
    check(rc == 0, "exit %d\n%s" % (rc, se))
    root = ET.fromstring(so)
    check(root.tag == SVG_NS + "svg", "stdout is not only the SVG")
    check("oversubscribed" in so, "oversubscribed region not marked")
    assert_scratch_clean(scratch)
    j = os.path.join(fresh("out"), "b.json")
    rc, so, se = bench("--strategies", "threads", "--split", "image", "--jobs", str(n + 1),
                       "--repeat", "1", "--warmup", "0", "--json", j, SAMPLES, scratch=scratch)
    check(rc == 0, "exit %d\n%s" % (rc, se))
    with open(j, encoding="utf-8") as f:
        doc = json.load(f)
    over = {x["jobs"]: x["oversubscribed"] for x in doc["configurations"]}
    check(over == {1: False, n + 1: True}, "oversubscribed flags %r (1 is always added)" % over)
    check("%d*" % (n + 1) in so, "table does not mark the oversubscribed row")


def case_usage_errors():
    scratch = fresh("scratch")
    for args in (["--jobs", "0", SAMPLES], ["--jobs", "1,x", SAMPLES], ["--strategies", "gpu", SAMPLES],
                 ["--split", "rows", SAMPLES], ["--repeat", "0", SAMPLES], ["--serial", SAMPLES],
                 ["--jobs", "2", "--max-jobs", "4", SAMPLES], [], ["--blur", "0", SAMPLES]):
        rc, so, se = bench(*args, scratch=scratch)
        check(rc == 2, "%r: exit %d (wanted 2)\n%s" % (args, rc, se))
        check("Try 'imgpar bench --help'" in se, "%r: the usage error does not point to bench's help:\n%s"
              % (args, se))
    rc, so, se = bench("--bogus-option", SAMPLES, scratch=scratch)
    check(rc == 2 and "Try 'imgpar bench --help'" in se, "unknown option: exit %d\n%s" % (rc, se))
    assert_scratch_clean(scratch)
    rc, so, se = bench("--help")
    check(rc == 0 and "--strategies" in so, "--help")


def case_bad_input():
    """A file the reference cannot decode stops the bench (exit 1), cleanly."""
    scratch = fresh("scratch")
    d = fresh("bad")
    bad = os.path.join(d, "bad.png")
    with open(bad, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    rc, so, se = bench("--strategies", "threads", "--jobs", "1", "--repeat", "1", "--warmup", "0",
                       os.path.join(SAMPLES, "gray8.png"), bad, scratch=scratch)
    check(rc == 1, "exit %d (wanted 1)\n%s" % (rc, se))
    check("reference" in se and "bad.png" in se, "the reason is not given:\n%s" % se)
    assert_scratch_clean(scratch)


def case_interrupt():
    """SIGINT mid-bench: exit 130, no scratch directory, no child left."""
    scratch = fresh("scratch")
    env = dict(os.environ, TMPDIR=scratch)
    p = subprocess.Popen([IMGPAR, "bench", "--no-progress", "--strategies", "procs", "--jobs", "2",
                          "--repeat", "1000", "--warmup", "0", SAMPLES], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    try:
        so, se = p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        raise Fail("bench did not stop on SIGINT")
    check(p.returncode == 130, "exit %d (wanted 130)\n%s" % (p.returncode, se.decode()))
    assert_scratch_clean(scratch)
    time.sleep(0.2)
    out = subprocess.run(["ps", "-o", "pid=,ppid=", "--ppid", str(p.pid)], stdout=subprocess.PIPE)
    check(not out.stdout.strip(), "children left: %r" % out.stdout)


CASES = [case_full_matrix, case_warmup_median, case_corrupt_reference, case_oversubscribed_and_stdout_svg,
         case_usage_errors, case_bad_input, case_interrupt]


def main():
    failed = 0
    for case in CASES:
        t0 = time.monotonic()
        try:
            case()
            print("ok   %s (%.1f s)" % (case.__name__, time.monotonic() - t0))
        except Exception:
            failed += 1
            print("FAIL %s" % case.__name__)
            traceback.print_exc(file=sys.stdout)
    if not failed:
        shutil.rmtree(TMP, ignore_errors=True)
    else:
        print("scratch kept in", TMP)
    print("%d of %d cases failed" % (failed, len(CASES)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

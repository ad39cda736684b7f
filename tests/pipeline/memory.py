#!/usr/bin/python3
"""Peak memory does not grow with the number of input files.

Usage: memory.py IMGPAR GEN_SCRIPT
Runs 200 and 2000 small generated images with --queue 4 for the threads and
procs executors and compares the peak RSS that --stats reports.
"""
import os
import re
import subprocess
import sys
import tempfile

SLACK_KIB = 6 * 1024


def peak(imgpar, args, indir, outdir):
    p = subprocess.run([imgpar, "--stats", "--queue", "4", "-j", "2"] + args + [indir, outdir],
                       capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        sys.exit(f"FAIL: imgpar exited {p.returncode}: {p.stderr}")
    m = re.search(r"peak RSS: imgpar ([0-9.]+) MiB, largest worker ([0-9.]+) MiB", p.stderr)
    n = re.search(r"imgpar stats: (\d+) images \(0 failed\)", p.stderr)
    if not m or not n:
        sys.exit(f"FAIL: no stats in output: {p.stderr}")
    return int(n.group(1)), float(m.group(1)) * 1024, float(m.group(2)) * 1024


def main():
    imgpar, gen = sys.argv[1:3]
    tmp = tempfile.mkdtemp(prefix="imgpar-mem-")
    big = os.path.join(tmp, "in2000")
    subprocess.run(["/usr/bin/python3", gen, big, "--small", "2000"], check=True)
    small = os.path.join(tmp, "in200")
    os.makedirs(small)
    for name in sorted(os.listdir(big))[:200]:
        os.link(os.path.join(big, name), os.path.join(small, name))
    for ex in ["--threads", "--procs"]:
        n1, rss1, w1 = peak(imgpar, [ex], small, os.path.join(tmp, "o1" + ex))
        n2, rss2, w2 = peak(imgpar, [ex], big, os.path.join(tmp, "o2" + ex))
        if (n1, n2) != (200, 2000):
            sys.exit(f"FAIL: processed {n1} and {n2} images")
        print(f"{ex}: peak RSS 200 images {rss1:.0f} KiB, 2000 images {rss2:.0f} KiB; workers {w1:.0f} / {w2:.0f} KiB")
        if rss2 > rss1 + SLACK_KIB:
            sys.exit(f"FAIL: {ex}: peak RSS grew from {rss1:.0f} to {rss2:.0f} KiB with 10x the files")
        if ex == "--procs" and (w1 <= 0 or w2 > w1 + SLACK_KIB):
            sys.exit(f"FAIL: worker peak RSS {w1:.0f} -> {w2:.0f} KiB")
    subprocess.run(["rm", "-rf", tmp])
    print("ok")


if __name__ == "__main__":
    main()

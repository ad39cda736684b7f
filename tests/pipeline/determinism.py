#!/usr/bin/python3
"""Every strategy writes exactly the bytes of the serial reference.

Usage: determinism.py IMGPAR SAMPLES_DIR GEN_SCRIPT [--threads-only]
Inputs: samples/ plus generated images (odd widths, 1-row and 1-column
images, all channel counts, PNG and JPEG, one image larger than a strip
budget). The reference is --serial -j 1 --io-threads 1 --writers 1.
"""
import hashlib
import itertools
import os
import subprocess
import sys
import tempfile


def digest_dir(d):
    """SHA-256 of each file in d (sub-directories skipped), by name."""
    out = {}
    for name in sorted(os.listdir(d)):
        if os.path.isdir(os.path.join(d, name)):
            continue
        with open(os.path.join(d, name), "rb") as f:
            out[name] = hashlib.sha256(f.read()).hexdigest()
    return out


def run(imgpar, args, inputs, outdir, env=None):
    p = subprocess.run([imgpar] + args + inputs + [outdir], capture_output=True, text=True, timeout=300,
                       env=env)
    if p.returncode != 0:
        sys.exit(f"FAIL: imgpar {' '.join(args)} exited {p.returncode}: {p.stderr}")
    return digest_dir(outdir)


def main():
    imgpar, samples, gen = sys.argv[1:4]
    tmp = tempfile.mkdtemp(prefix="imgpar-det-")
    gdir = os.path.join(tmp, "gen")
    subprocess.run(["/usr/bin/python3", gen, gdir, "--shapes", "--big", "1500x1200"], check=True)
    inputs = [samples, gdir]
    ref = run(imgpar, ["--serial", "-j", "1", "--io-threads", "1", "--writers", "1"], inputs,
              os.path.join(tmp, "ref"))
    n_samples = sum(1 for f in os.listdir(samples) if f.endswith((".png", ".jpg")))
    if n_samples == 0 or len(ref) != 61 + n_samples:
        sys.exit(f"FAIL: reference wrote {len(ref)} files, expected {61 + n_samples}")

    configs = []
    for ex, split, j in itertools.product(["--threads", "--procs"], ["image", "strips"], [1, 2, 3, 8]):
        configs.append([ex, "--split", split, "-j", str(j)])
    for ex in ["--threads", "--procs", "--serial"]:
        for io, wr in [(1, 1), (4, 3), (1, 3), (4, 1)]:
            configs.append([ex, "-j", "2", "--io-threads", str(io), "--writers", str(wr)])
        configs.append([ex, "-j", "3", "--queue", "1"])
        configs.append([ex, "-j", "2", "--split", "auto", "--mem", "12M"])
    configs.append(["--serial", "--split", "strips", "-j", "3"])
    if "--threads-only" in sys.argv:
        configs = [c for c in configs if "--procs" not in c]
    checked = 0
    for i, args in enumerate(configs):
        got = run(imgpar, args, inputs, os.path.join(tmp, f"o{i}"))
        if got.keys() != ref.keys():
            sys.exit(f"FAIL: {args}: file set differs: {sorted(set(got) ^ set(ref))}")
        bad = [k for k in ref if got[k] != ref[k]]
        if bad:
            sys.exit(f"FAIL: {args}: {len(bad)} outputs differ from serial, e.g. {bad[:5]}")
        checked += len(got)
    # Strip-encoded outputs (pigz-style PNG, restart-marker JPEG; normally
    # for huge images only: the test lowers the threshold): identical bytes
    # for every -j and strategy, valid files, and the same pixels as the
    # whole-image encoders wrote. Colour JPEG strips come from a blur-only run.
    from PIL import Image
    import numpy as np
    env = dict(os.environ, IMGPAR_TEST_PNG_STRIP_MIN="100000")
    striped = 0
    for chain in ([], ["--blur", "1"]):
        wref = run(imgpar, ["--serial", "-j", "1"] + chain, inputs, os.path.join(tmp, f"w{len(chain)}"))
        sref = run(imgpar, ["--serial", "-j", "1"] + chain, inputs, os.path.join(tmp, f"sref{len(chain)}"), env)
        strip_configs = [["--threads", "-j", "2"], ["--threads", "-j", "8"], ["--procs", "-j", "3"]]
        if "--threads-only" in sys.argv:
            strip_configs = strip_configs[:2]
        for i, args in enumerate(strip_configs):
            got = run(imgpar, args + chain, inputs, os.path.join(tmp, f"s{len(chain)}-{i}"), env)
            if got != sref:
                sys.exit(f"FAIL: strip-encoded outputs differ with {args + chain}")
        for name in sref:
            a = os.path.join(tmp, f"sref{len(chain)}", name)
            b = os.path.join(tmp, f"w{len(chain)}", name)
            if name.endswith(".png"):
                chk = subprocess.run(["pngcheck", "-q", a], capture_output=True, text=True)
                if chk.returncode != 0:
                    sys.exit(f"FAIL: pngcheck rejects strip-encoded {name}: {chk.stdout}")
            pa, pb = np.asarray(Image.open(a)), np.asarray(Image.open(b))
            if pa.shape != pb.shape or (pa != pb).any():
                sys.exit(f"FAIL: strip-encoded {name} ({chain}) decodes to other pixels than the whole-image encoder")
            if sref[name] != wref[name]:
                striped += 1
                if name.endswith(".jpg") and b"\xff\xdd" not in open(a, "rb").read():
                    sys.exit(f"FAIL: strip-encoded JPEG {name} has no restart interval")
    if striped < 3:
        sys.exit(f"FAIL: only {striped} outputs were strip-encoded; the strip test tested too little")
    subprocess.run(["rm", "-rf", tmp])
    print(f"ok: {len(configs)} configurations x {len(ref)} outputs identical to serial ({checked} files); "
          f"{striped} strip-encoded outputs identical across -j and equal in pixels")


if __name__ == "__main__":
    main()

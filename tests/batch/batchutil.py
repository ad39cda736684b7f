"""Helpers for the batch suite: trees of generated images, output trees with
their checksums, reference runs, and reading JSON Lines reports. Builds on
tests/cli/cliutil.py (check, expect_rc, main, Env)."""
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cli"))
from cliutil import Fail, check, expect_rc, main, sha256  # noqa: E402,F401


def make_image(path, w=40, h=30, seed=0, mode="RGB", fmt=None, **kw):
    """A small deterministic image (textured, so the filters have work)."""
    rng = np.random.default_rng(seed)
    c = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}[mode]
    y, x = np.mgrid[0:h, 0:w]
    base = (np.sin(x / 5.0 + seed) + np.cos(y / 4.0)) * 60 + 128
    arr = np.stack([np.clip(base + 20 * k + rng.integers(-30, 31, (h, w)), 0, 255)
                    for k in range(c)], axis=-1).astype(np.uint8)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    img = Image.fromarray(arr[..., 0] if c == 1 else arr, mode)
    img.save(path, format=fmt, **kw)
    return path


def make_tree(root, rels, size=(40, 30)):
    """Images at root/rel for each rel (format from the extension)."""
    for i, rel in enumerate(rels):
        ext = rel.rsplit(".", 1)[-1].lower()
        fmt = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "bmp": "BMP"}.get(ext, "PNG")
        make_image(os.path.join(root, rel), size[0], size[1], seed=i, fmt=fmt)
    return root


def tree(d):
    """{relative path: sha256} of every file under d (hidden ones included)."""
    out = {}
    for dirpath, _, files in os.walk(d):
        for f in files:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, d)] = sha256(p)
    return out


def files_under(d):
    return sorted(tree(d)) if os.path.isdir(d) else []


def reference_outputs(env, inputs, **kw):
    """{input path: output bytes} from one imgpar run per input (the
    single-file behaviour, independent of the batch features under test)."""
    ref = {}
    for p in inputs:
        out = env.fresh_dir("ref")
        r = env.run(p, out, **kw)
        expect_rc(r, 0)
        names = os.listdir(out)
        check(len(names) == 1, "reference run of %s wrote %s" % (p, names))
        with open(os.path.join(out, names[0]), "rb") as f:
            ref[p] = f.read()
    return ref


def read_report(path_or_text, from_text=False):
    """The JSON objects of a JSON Lines report; every line must parse."""
    if from_text:
        text = path_or_text
    else:
        with open(path_or_text, "rb") as f:
            text = f.read().decode("utf-8")   # a report must be valid UTF-8
    recs = []
    for i, line in enumerate(text.splitlines()):
        try:
            recs.append(json.loads(line))
        except ValueError as e:
            raise Fail("report line %d is not JSON (%s): %r" % (i + 1, e, line))
    return recs


def fnv1a64(data):
    h = 14695981039346656037
    for b in data:
        h ^= b
        h = (h * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def dry_run_lines(r):
    """[(action, input, output)] from --dry-run stdout."""
    out = []
    for line in r.out.splitlines():
        parts = line.split("\t")
        check(len(parts) == 3 and parts[0] in ("process", "skip"),
              "bad --dry-run line %r\n%s" % (line, r.describe()))
        out.append(tuple(parts))
    return out


def run_rss(argv, stdin_path=None, stdout_path=os.devnull, stderr_path=os.devnull, timeout=120, cwd=None):
    """Runs argv with files for its standard streams; returns (exit status,
    peak RSS in KiB) measured by wait4 on that very process. Under
    AddressSanitizer (ASAN_OPTIONS set) freed memory is reused at once
    (quarantine_size_mb=0): its quarantine would otherwise hold up to 256 MiB
    of freed memory and make any RSS comparison meaningless."""
    import signal
    import time
    env = dict(os.environ)
    if "ASAN_OPTIONS" in env:
        env["ASAN_OPTIONS"] += ":quarantine_size_mb=0"
    fin = open(stdin_path, "rb") if stdin_path else open(os.devnull, "rb")
    with fin, open(stdout_path, "wb") as fout, open(stderr_path, "wb") as ferr:
        p = subprocess.Popen(argv, stdin=fin, stdout=fout, stderr=ferr, cwd=cwd, env=env)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                p.returncode = os.waitstatus_to_exitcode(status)
                return p.returncode, ru.ru_maxrss
            if time.monotonic() > deadline:
                os.kill(p.pid, signal.SIGKILL)
                os.wait4(p.pid, 0)
                raise Fail("%s timed out after %d s" % (argv, timeout))
            time.sleep(0.01)

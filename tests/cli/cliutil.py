"""Shared helpers for the cli suite: running imgpar, a tiny check runner, and
the independent numpy references the outputs are compared against.

The references follow the documented definitions, not imgpar's code:
  gray (Rec.601)  Y = round_half_up(0.299 R + 0.587 G + 0.114 B), computed
                  exactly as (299 R + 587 G + 114 B + 500) // 1000
  Gaussian        float64 taps exp(-i^2 / (2 sigma^2)), |i| <= ceil(3 sigma),
                  normalised to sum 1, separable, edges reflect-101
                  (numpy.pad mode='reflect'), rounded half up at the end
  box             exact integer mean over the (2r+1)^2 reflect-101 window,
                  rounded half up
  alpha           blurred premultiplied: colour = round(blur(c a) / blur(a)),
                  0 where blur(a) == 0; alpha = round(blur(a))
"""
import hashlib
import math
import os
import shutil
import subprocess
import sys
import tempfile
import traceback

import numpy as np
from PIL import Image

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


class Result:
    def __init__(self, args, proc):
        self.args = args
        self.rc = proc.returncode
        self.out = proc.stdout.decode("utf-8", "replace")
        self.err = proc.stderr.decode("utf-8", "replace")

    def describe(self):
        return "command: %s\nexit %d\nstdout:\n%s\nstderr:\n%s" % (
            " ".join(self.args), self.rc, self.out, self.err)


class Env:
    """Paths given on the command line plus a scratch directory per script."""

    def __init__(self, argv):
        if len(argv) < 2:
            sys.exit("usage: %s IMGPAR [SAMPLES [CONFORMANCE [PNGCHECK]]]" % argv[0])
        self.imgpar = os.path.abspath(argv[1])
        self.samples = os.path.abspath(argv[2]) if len(argv) > 2 else None
        self.conformance = os.path.abspath(argv[3]) if len(argv) > 3 else None
        self.pngcheck = argv[4] if len(argv) > 4 and argv[4] else None
        self.tmp = tempfile.mkdtemp(prefix="imgpar-cli-")
        self._n = 0

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def fresh_dir(self, name):
        """A new empty directory (unique name) under the scratch directory."""
        self._n += 1
        d = self.path("%s-%d" % (name, self._n))
        os.makedirs(d)
        return d

    def sample(self, name):
        return os.path.join(self.samples, name)

    def run(self, *args, outdir=None, timeout=60, env=None):
        """Runs imgpar (env: variables added to the environment). When outdir
        is given (or the last argument is an existing directory), checks that
        no temporary file was left in it."""
        argv = [self.imgpar] + [str(a) for a in args]
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout, env=dict(os.environ, **env) if env else None)
        r = Result(argv, proc)
        check(r.rc >= 0, "imgpar killed by signal %d\n%s" % (-r.rc, r.describe()))
        if outdir is None and args and os.path.isdir(str(args[-1])):
            outdir = str(args[-1])
        if outdir is not None:
            assert_no_temps(outdir, r)
        return r

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


def assert_no_temps(outdir, r=None):
    if not os.path.isdir(outdir):
        return
    left = sorted(n for n in os.listdir(outdir) if n.startswith("."))
    check(not left, "temporary files left in %s: %s%s" % (
        outdir, left, "\n" + r.describe() if r else ""))


def expect_rc(r, rc):
    check(r.rc == rc, "expected exit %d\n%s" % (rc, r.describe()))


def listdir(d):
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def tree_sums(d):
    return {n: sha256(os.path.join(d, n)) for n in listdir(d)}


def head(path, n=8):
    with open(path, "rb") as f:
        return f.read(n)


def load(path):
    """Decoded pixels as uint8 array (h, w) or (h, w, c), plus the PIL mode."""
    with Image.open(path) as im:
        im.load()
        mode = im.mode
        if mode == "P":
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            mode = im.mode
        arr = np.asarray(im)
    check(arr.dtype == np.uint8, "%s: decoded as %s, expected 8-bit samples" % (path, arr.dtype))
    return arr, mode


def gray601(rgb):
    """Exact Rec.601 luma of an (h, w, 3) uint8 array, half up."""
    v = rgb.astype(np.int64)
    return ((299 * v[..., 0] + 587 * v[..., 1] + 114 * v[..., 2] + 500) // 1000).astype(np.uint8)


def gauss_taps(sigma):
    r = max(1, int(math.ceil(3.0 * sigma)))
    i = np.arange(-r, r + 1, dtype=np.float64)
    w = np.exp(-(i * i) / (2.0 * sigma * sigma))
    return w / w.sum(), r


def _conv_axis(plane, w, r, axis):
    pad = [(0, 0)] * plane.ndim
    pad[axis] = (r, r)
    p = np.pad(plane, pad, mode="reflect")
    n = plane.shape[axis]
    out = np.zeros(plane.shape, dtype=np.float64)
    for k in range(2 * r + 1):
        sl = [slice(None)] * plane.ndim
        sl[axis] = slice(k, k + n)
        out += w[k] * p[tuple(sl)]
    return out


def gauss_float(plane, sigma):
    """Unrounded separable Gaussian of a 2-D float64 plane, reflect-101 edges."""
    w, r = gauss_taps(sigma)
    return _conv_axis(_conv_axis(plane.astype(np.float64), w, r, 1), w, r, 0)


def round_half_up(x):
    return np.clip(np.floor(x + 0.5), 0, 255).astype(np.uint8)


def gauss_ref(arr, sigma, has_alpha):
    """Gaussian blur of a uint8 (h, w) or (h, w, c) array; last channel is alpha
    when has_alpha (then blurred premultiplied)."""
    if arr.ndim == 2:
        return round_half_up(gauss_float(arr, sigma))
    c = arr.shape[2]
    out = np.empty_like(arr)
    if not has_alpha:
        for k in range(c):
            out[..., k] = round_half_up(gauss_float(arr[..., k], sigma))
        return out
    a = arr[..., c - 1].astype(np.float64)
    ba = gauss_float(a, sigma)
    for k in range(c - 1):
        bca = gauss_float(arr[..., k].astype(np.float64) * a, sigma)
        with np.errstate(divide="ignore", invalid="ignore"):
            col = np.where(ba > 0, bca / np.where(ba > 0, ba, 1.0), 0.0)
        out[..., k] = round_half_up(col)
    out[..., c - 1] = round_half_up(ba)
    return out


def box_ref(arr, radius):
    """Exact box mean over (2r+1)^2 reflect-101 window, half up, per channel."""
    planes = arr[..., None] if arr.ndim == 2 else arr
    n = (2 * radius + 1) ** 2
    out = np.empty_like(planes)
    for k in range(planes.shape[2]):
        p = np.pad(planes[..., k].astype(np.int64), radius, mode="reflect")
        h, w = planes.shape[:2]
        s = np.zeros((h, w), dtype=np.int64)
        for dy in range(2 * radius + 1):
            for dx in range(2 * radius + 1):
                s += p[dy:dy + h, dx:dx + w]
        out[..., k] = ((s + n // 2) // n).astype(np.uint8)
    return out[..., 0] if arr.ndim == 2 else out


def gray_ref(arr, mode):
    """The --gray filter on decoded pixels: RGB -> L, RGBA -> LA, L/LA unchanged."""
    if mode == "RGB":
        return gray601(arr), "L"
    if mode == "RGBA":
        return np.dstack([gray601(arr[..., :3]), arr[..., 3]]), "LA"
    if mode in ("L", "LA"):
        return arr, mode
    raise Fail("gray_ref: unexpected mode %s" % mode)


def max_diff(a, b):
    check(a.shape == b.shape, "shape %s differs from reference %s" % (a.shape, b.shape))
    return int(np.abs(a.astype(np.int64) - b.astype(np.int64)).max())


def compare(what, got, ref, tol, max_off_frac=None):
    """Fails when got differs from ref by more than tol anywhere, or (when
    max_off_frac is given) differs at all in more than that fraction of samples:
    a correct implementation is off by one only where the exact value is
    within rounding noise of a half."""
    d = max_diff(got, ref)
    if d > tol:
        bad = np.argwhere(np.abs(got.astype(np.int64) - ref.astype(np.int64)) > tol)
        y, x = bad[0][:2]
        raise Fail("%s: differs from the reference by %d (> %d) at %d pixels, first at "
                   "(x=%d, y=%d): got %s, reference %s" % (
                       what, d, tol, len(bad), x, y, got[y, x], ref[y, x]))
    if max_off_frac is not None:
        frac = float((got != ref).mean())
        check(frac <= max_off_frac, "%s: %.2f%% of samples differ from the reference "
              "(at most %.2f%% expected)" % (what, 100 * frac, 100 * max_off_frac))
    return d


def main(checks, argv=None):
    """Runs every check(env) in order, reports each, exits 1 if any failed.
    A script whose checks ran nothing (empty list) fails rather than passes."""
    env = Env(argv or sys.argv)
    failed = 0
    if not checks:
        print("no checks")
        sys.exit(1)
    try:
        for fn in checks:
            try:
                fn(env)
                print("ok   %s" % fn.__name__)
            except Exception as e:  # report and go on with the next check
                failed += 1
                print("FAIL %s: %s" % (fn.__name__, e))
                if not isinstance(e, Fail):
                    traceback.print_exc(file=sys.stdout)
    finally:
        env.cleanup()
    print("%d of %d checks failed" % (failed, len(checks)))
    sys.exit(1 if failed else 0)

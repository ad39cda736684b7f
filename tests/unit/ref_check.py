#!/usr/bin/python3
"""Kernels against independent numpy references.

usage: ref_check.py FILTER_TOOL

Builds random images and chains, runs them through filter_tool (once per
SIMD level) and compares with references written here from the definitions,
not from imgpar's code:
  gray   exact integer formulas                          -> must be equal
  box    exact integer sums and rational rounding        -> must be equal
  gauss  float64, unquantised weights, exact separable   -> within 1 level
Every SIMD level must also give the same bytes. Exits 1 on any mismatch.
"""
import math
import subprocess
import sys

import numpy as np

RNG = np.random.default_rng(20240611)
SIGMAS = [0.5, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0]
RADII = [1, 2, 3, 5, 8]


def reflect101(i, n):
    """BORDER_REFLECT_101 (-1 -> 1, n -> n-2), repeated; n == 1 -> 0."""
    i = np.asarray(i, dtype=np.int64)
    if n == 1:
        return np.zeros_like(i)
    period = 2 * (n - 1)
    i = np.mod(i, period)
    return np.where(i >= n, period - i, i)


def check_reflect():
    for n in range(2, 12):
        for pad in range(0, 3 * n):
            a = np.arange(n)
            want = np.pad(a, pad, mode="reflect")
            got = reflect101(np.arange(-pad, n + pad), n)
            assert np.array_equal(want, got), (n, pad)


def correlate(a, weights, axis):
    """sum_k weights[k] * a[reflect(x + k - r)] along axis (works for float and int)."""
    r = (len(weights) - 1) // 2
    n = a.shape[axis]
    out = np.zeros(a.shape, dtype=np.result_type(a, weights))
    for k in range(-r, r + 1):
        out += weights[k + r] * np.take(a, reflect101(np.arange(n) + k, n), axis=axis)
    return out


def gauss_float(a, sigma):
    r = math.ceil(3 * sigma)
    x = np.arange(-r, r + 1, dtype=np.float64)
    w = np.exp(-x * x / (2 * sigma * sigma))
    w /= w.sum()
    return correlate(correlate(a.astype(np.float64), w, 1), w, 0)


def round_half_up(v):
    return np.clip(np.floor(v + 0.5), 0, 255).astype(np.int64)


def ref_gauss(img, sigma):
    c = img.shape[2]
    if c in (1, 3):
        return round_half_up(gauss_float(img, sigma))
    alpha = img[:, :, c - 1:].astype(np.float64)
    prem = img[:, :, :c - 1].astype(np.float64) * alpha
    pb = gauss_float(prem, sigma)
    ab = gauss_float(alpha, sigma)
    with np.errstate(divide="ignore", invalid="ignore"):
        colour = np.where(ab > 0, round_half_up(pb / ab), 0)
    return np.concatenate([colour, round_half_up(ab)], axis=2)


def box_sum(a, r):
    ones = np.ones(2 * r + 1, dtype=np.int64)
    return correlate(correlate(a.astype(np.int64), ones, 1), ones, 0)


def ref_box(img, r):
    n = (2 * r + 1) ** 2
    c = img.shape[2]
    if c in (1, 3):
        return (box_sum(img, r) + n // 2) // n
    alpha = img[:, :, c - 1:].astype(np.int64)
    sp = box_sum(img[:, :, :c - 1].astype(np.int64) * alpha, r)
    sa = box_sum(alpha, r)
    colour = np.where(sa > 0, (2 * sp + sa) // np.maximum(2 * sa, 1), 0)
    return np.concatenate([colour, (sa + n // 2) // n], axis=2)


def ref_gray(img, weights):
    c = img.shape[2]
    if c < 3:
        return img.astype(np.int64)
    rgb = img[:, :, :3].astype(np.int64)
    if weights == 601:
        y = (299 * rgb[..., 0] + 587 * rgb[..., 1] + 114 * rgb[..., 2] + 500) // 1000
    else:
        y = (2126 * rgb[..., 0] + 7152 * rgb[..., 1] + 722 * rgb[..., 2] + 5000) // 10000
    y = y[:, :, None]
    return y if c == 3 else np.concatenate([y, img[:, :, 3:].astype(np.int64)], axis=2)


def reference(img, specs):
    """Returns (output, tolerance). Only the last stage may be inexact, except
    that an exact gray may follow a Gaussian (gray of values within 1 is within 1)."""
    out, tol = img.astype(np.int64), 0
    for s in specs:
        if s.startswith("gray"):
            out = ref_gray(out, int(s[4:]))
        elif s.startswith("gauss:"):
            assert tol == 0, specs
            out, tol = ref_gauss(out, float(s[6:])), 1
        else:
            assert tol == 0, specs
            out = ref_box(out, int(s[4:]))
    return out, tol


def random_image(h, w, c):
    img = RNG.integers(0, 256, size=(h, w, c), dtype=np.uint8)
    if c in (2, 4):
        # Alpha with real structure: opaque, transparent and partial regions.
        kind = RNG.integers(0, 4)
        if kind == 1:
            img[:, :, c - 1] = RNG.choice([0, 255, 128, 1], size=(h, w), p=[0.2, 0.5, 0.2, 0.1])
        elif kind == 2:
            img[:, :, c - 1] = np.clip(RNG.integers(0, 256, size=(h, w)) + 60, 0, 255)
        elif kind == 3:
            # Sparse: most windows see alpha only on their tail taps.
            img[:, :, c - 1] = np.where(RNG.random((h, w)) < 0.03, img[:, :, c - 1], 0)
    return img


def build_cases():
    cases = []
    k = 0
    for w in range(1, 71):
        for c in range(1, 5):
            for h in (1, 2, 3, int(RNG.integers(4, 13))):
                k += 1
                sigma = SIGMAS[k % len(SIGMAS)]
                cases.append((h, w, c, ["gauss:%g" % sigma]))
                if k % 2 == 0:
                    cases.append((h, w, c, ["box:%d" % RADII[k % len(RADII)]]))
                if k % 5 == 0:
                    cases.append((h, w, c, ["gray%d" % (601 if k % 10 else 709)]))
    for (h, w) in [(1, 1), (1, 40), (40, 1), (67, 45), (2, 97), (130, 33)]:
        for c in range(1, 5):
            for sigma in SIGMAS:
                cases.append((h, w, c, ["gauss:%g" % sigma]))
            for r in RADII:
                cases.append((h, w, c, ["box:%d" % r]))
            cases.append((h, w, c, ["gray601"]))
            cases.append((h, w, c, ["gray709"]))
    for (h, w) in [(200, 300), (61, 517), (3, 2000)]:
        for c in range(1, 5):
            cases.append((h, w, c, ["gauss:%g" % SIGMAS[(h + c) % len(SIGMAS)]]))
            cases.append((h, w, c, ["box:%d" % RADII[(w + c) % len(RADII)]]))
    # Radius beyond the image: repeated reflection; the largest sigma and
    # radius; tiny sigmas whose outer taps are almost zero.
    for (h, w) in [(9, 14), (1, 25), (31, 2)]:
        for c in range(1, 5):
            for sigma in (0.1, 0.34, 12.5, 33.0, 100.0):
                cases.append((h, w, c, ["gauss:%g" % sigma]))
            for r in (17, 300):
                cases.append((h, w, c, ["box:%d" % r]))
    for c in range(1, 5):
        cases.append((40, 700, c, ["gauss:100"]))
        cases.append((40, 700, c, ["box:300"]))
    # Chains whose reference stays within 1.
    for (h, w) in [(37, 53), (5, 70), (90, 64)]:
        for c in range(1, 5):
            cases.append((h, w, c, ["gray601", "gauss:2"]))
            cases.append((h, w, c, ["gray709", "gauss:1.5"]))
            cases.append((h, w, c, ["box:2", "gauss:3"]))
            cases.append((h, w, c, ["box:1", "gray601", "box:3"]))
            cases.append((h, w, c, ["gauss:1", "gray601"]))
            cases.append((h, w, c, []))
    return [(h, w, c, specs, random_image(h, w, c)) for (h, w, c, specs) in cases]


def run_tool(tool, level, cases):
    blob = bytearray()
    for (h, w, c, specs, img) in cases:
        blob += ("%d %d %d %s\n" % (w, h, c, " ".join(specs))).encode()
        blob += img.tobytes()
    res = subprocess.run([tool, str(level)], input=bytes(blob), capture_output=True, check=False)
    if res.returncode != 0:
        sys.stderr.write(res.stderr.decode())
        raise SystemExit("filter_tool failed at level %d" % level)
    return res.stdout


def split_outputs(data, cases, refs):
    outs, pos = [], 0
    for (h, w, c, specs, img), (ref, tol) in zip(cases, refs):
        size = h * w * ref.shape[2]
        outs.append(np.frombuffer(data, dtype=np.uint8, count=size, offset=pos)
                    .reshape(h, w, ref.shape[2]).astype(np.int64))
        pos += size
    if pos != len(data):
        raise SystemExit("filter_tool wrote %d bytes, expected %d" % (len(data), pos))
    return outs


def main():
    tool = sys.argv[1]
    check_reflect()
    cases = build_cases()
    refs = [reference(img, specs) for (h, w, c, specs, img) in cases]
    failures = 0
    first = None
    for level in (2, 1, 0):
        data = run_tool(tool, level, cases)
        if first is None:
            first = data
        elif data != first:
            print("FAIL: SIMD level %d output differs from level 2" % level)
            failures += 1
        outs = split_outputs(data, cases, refs)
        worst = {}
        for (h, w, c, specs, img), (ref, tol), out in zip(cases, refs, outs):
            diff = int(np.abs(out - ref).max()) if out.size else 0
            key = " ".join(s.split(":")[0] for s in specs) or "copy"
            worst[key] = max(worst.get(key, 0), diff)
            if diff > tol:
                failures += 1
                if failures < 20:
                    where = np.argwhere(np.abs(out - ref) > tol)[0]
                    print("FAIL level %d %dx%dx%d %s: max diff %d (tolerance %d) at %s: got %d want %d"
                          % (level, w, h, c, specs, diff, tol, tuple(where),
                             out[tuple(where)], ref[tuple(where)]))
        print("level %d: %d cases, max abs diff by chain: %s" % (level, len(cases), worst))
    if failures:
        print("%d failures" % failures)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())

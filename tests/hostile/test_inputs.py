#!/usr/bin/python3
"""Hostile inputs: each bad file gives exactly one line 'imgpar: PATH: reason'
with a specific reason and no output, and the rest of the batch completes
correctly (exit 1), with every executor.

usage: test_inputs.py IMGPAR SAMPLES CONFORMANCE SHIM
"""
import os
import resource
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hutil import (NO_DAC, can_drop_dac, check, error_lines, expect, is_asan, jpeg_bad_huffman,  # noqa: E402
                   jpeg_bad_dht_index, jpeg_oversubscribed_dht,
                   jpeg_resized, main, png_bad_crc, png_bomb, png_zlib_overflow,
                   read_report, report_path, run, shown, stb_probe_bomb, tree_sums)

GOOD = ["gray8.png", "rgba8.png", "photo.jpg", "progressive.jpg"]


def sample_bytes(env, name):
    with open(env.sample(name), "rb") as f:
        return f.read()


def put(d, name, data):
    p = os.path.join(os.fsencode(d), os.fsencode(name) if isinstance(name, str) else name)
    with open(p, "wb") as f:
        f.write(data)
    return p


def reference(env):
    """{output name (bytes): sha256} of the good samples run alone."""
    out = env.fresh_dir("ref")
    expect(run(env.imgpar, *[env.sample(n) for n in GOOD], out), 0)
    return tree_sums(out)


def hostile_set(env, d):
    """Bad files {path: reason substring} and good ones {path: output name
    whose reference bytes it must produce, output name it must have}."""
    png = sample_bytes(env, "rgb8.png")
    jpg = sample_bytes(env, "photo.jpg")
    bad = {
        put(d, "zero.png", b""): "empty file",
        put(d, "notes.txt", b"these are not the pixels you are looking for\n" * 30):
            "not a recognized image format",
        put(d, "random.png", bytes((i * 7919 + 13) % 251 for i in range(5000))):
            "not a recognized image format",
        put(d, "stb-probe-bomb.tga", stb_probe_bomb()): "not a recognized image format",
        put(d, "cut.png", png[:len(png) // 2]): "truncated PNG data",
        put(d, "cut.jpg", jpg[:len(jpg) // 2]): "truncated JPEG data",
        put(d, "cut-header.jpg", jpg[:150]): "truncated JPEG data",
        put(d, "bad-crc.png", png_bad_crc(png)): "IHDR: CRC error",
        put(d, "bomb-dim.png", png_bomb(100000, 100000)): "image 100000x100000 exceeds --max-dim 65535",
        put(d, "bomb-pixels.png", png_bomb(60000, 60000, 2)):
            "image 60000x60000 exceeds --max-pixels 268435456",
        put(d, "bomb.jpg", jpeg_resized(jpg, 60000, 60000)):
            "image 60000x60000 exceeds --max-pixels 268435456",
        put(d, "zlib-bomb.png", png_zlib_overflow()): "Too much image data",
        put(d, "bad-huffman.jpg", jpeg_bad_huffman(jpg)): "Bogus Huffman table definition",
        put(d, "oversubscribed-huffman.jpg", jpeg_oversubscribed_dht(jpg)): "Bogus Huffman table definition",
        put(d, "bad-dht-index.jpg", jpeg_bad_dht_index(jpg)): "Bogus DHT index 39",
        # Odd names on bad files: the error line must still name them, on one line.
        put(d, b"cut with space.png", png[:3000]): "truncated PNG data",
        put(d, b"cut\nnewline.png", png[:3000]): "truncated PNG data",
        put(d, b"cut-\xff\xfe-latin.jpg", jpg[:4000]): "truncated JPEG data",
    }
    missing = os.path.join(os.fsencode(d), b"does-not-exist.png")
    bad[missing] = "No such file or directory"
    dangling = os.path.join(os.fsencode(d), b"dangling.png")
    os.symlink(b"/nonexistent/imgpar-test", dangling)
    bad[dangling] = "No such file or directory"
    loop = os.path.join(os.fsencode(d), b"loop.png")
    os.symlink(b"loop.png", loop)
    bad[loop] = "Too many levels of symbolic links"
    fifo = os.path.join(os.fsencode(d), b"fifo.png")
    os.mkfifo(fifo)
    bad[fifo] = "not a regular file"
    bad[b"/dev/null"] = "not a regular file"
    good = {
        put(d, "photo-named.png", jpg): (b"photo.jpg", b"photo-named.jpg"),       # JPEG named .png
        put(d, "gray8-named.jpg", sample_bytes(env, "gray8.png")): (b"gray8.png", b"gray8-named.png"),
        put(d, "with space.png", sample_bytes(env, "rgba8.png")): (b"rgba8.png", b"with space.png"),
        put(d, b"new\nline.jpg", sample_bytes(env, "progressive.jpg")):
            (b"progressive.jpg", b"new\nline.jpg"),
        put(d, b"caf\xe9.png", sample_bytes(env, "gray8.png")): (b"gray8.png", b"caf\xe9.png"),
    }
    return bad, good


def check_hostile_batch(env):
    ref = reference(env)
    d = env.fresh_dir("hostile")
    bad, good = hostile_set(env, d)
    inputs = []
    for i in range(max(len(bad), len(good))):
        inputs += list(bad)[i:i + 1] + list(good)[i:i + 1]
    want_outputs = {out: ref[src] for src, out in good.values()}
    for opts in ([], ["--serial"], ["--procs", "-j", "2"], ["-j", "1", "--queue", "1"]):
        out = env.fresh_dir("out")
        rep = os.path.join(env.tmp, "report.jsonl")
        r = run(env.imgpar, *opts, "--report", rep, *inputs, out, timeout=60)
        expect(r, 1)
        error_lines(r, bad)
        got = tree_sums(out)
        check(got == want_outputs, "%s: outputs %s, expected %s" % (opts, sorted(got), sorted(want_outputs)))
        recs = read_report(rep)
        check(len(recs) == len(inputs), "%s: %d report records for %d inputs" % (opts, len(recs), len(inputs)))
        by_path = {report_path(x): x for x in recs}
        for p, reason in bad.items():
            x = by_path.get(p)
            check(x is not None, "no report record for %r" % p)
            check(x["status"] == "failed" and reason in x["error"], "%r: record %s" % (p, x))
        for p in good:
            x = by_path.get(p)
            check(x is not None and x["status"] == "ok" and x["error"] is None, "%r: record %s" % (p, x))
    print("  %d bad and %d good inputs, 4 executor settings" % (len(bad), len(good)))


def check_truncated_prefixes(env):
    """A sample of prefixes through the CLI: each is 'truncated' by default
    (no output, never padded); with --allow-truncated each is either a
    warning plus a full-size output or still an error."""
    d = env.fresh_dir("prefixes")
    cuts = {}
    for name in ["rgb8.png", "palette.png", "gray16.png", "photo.jpg", "progressive.jpg", "gray.jpg"]:
        data = sample_bytes(env, name)
        kind = "PNG" if name.endswith(".png") else "JPEG"
        points = sorted({8 + (len(data) - 9) * k // 11 for k in range(12)} | {len(data) - 1, len(data) - 2})
        for n in points:
            stem, ext = name.rsplit(".", 1)
            cuts[put(d, "%s-%06d.%s" % (stem, n, ext), data[:n])] = (kind, n, len(data))
    out = env.fresh_dir("out")
    r = run(env.imgpar, *sorted(cuts), env.sample("gray8.png"), out, timeout=120)
    expect(r, 1)
    error_lines(r, {p: "truncated %s data" % kind for p, (kind, _, _) in cuts.items()})
    check(sorted(tree_sums(out)) == [b"gray8.png"], "outputs for truncated files: %s" % sorted(tree_sums(out)))

    out = env.fresh_dir("out-allow")
    r = run(env.imgpar, "--allow-truncated", *sorted(cuts), out, timeout=120)
    check(r.rc in (0, 1), "exit %d\n%s" % (r.rc, r.describe()))
    check(len(r.lines) == len(cuts), "expected one line per prefix\n" + r.describe())
    outs = tree_sums(out)
    warned = {"PNG": 0, "JPEG": 0}
    for p, (kind, n, size) in cuts.items():
        line = [l for l in r.lines if l.startswith(b"imgpar: " + shown(p) + b": ")]
        check(len(line) == 1, "no line for %r\n%s" % (p, r.describe()))
        reason = line[0][len(b"imgpar: " + shown(p) + b": "):]
        name = os.path.basename(p)
        if reason.startswith(b"warning: truncated %s data" % kind.encode()):
            warned[kind] += 1
            check(name in outs, "%r: warned but no output" % p)
        else:
            check(reason.startswith(b"truncated %s data" % kind.encode()), "%r: %r" % (p, reason))
            check(name not in outs, "%r: failed but has an output" % p)
    check(r.rc == (1 if len(outs) < len(cuts) else 0), "exit status %d with %d of %d outputs" % (
        r.rc, len(outs), len(cuts)))
    check(warned["PNG"] > 5 and warned["JPEG"] > 5, "too few prefixes accepted: %s" % warned)
    print("  %d prefixes; with --allow-truncated %s accepted with a warning" % (len(cuts), warned))


def check_allow_truncated_jpeg(env):
    """Default: a truncated JPEG is an error, never a grey-padded image.
    --allow-truncated: accepted with one warning line, full size, the rows
    before the cut as in the whole file."""
    import numpy as np
    from PIL import Image

    data = sample_bytes(env, "photo.jpg")
    d = env.fresh_dir("cutjpeg")
    cut = put(d, "photo.jpg", data[:int(len(data) * 0.6)])
    out = env.fresh_dir("out")
    r = run(env.imgpar, cut, out)
    expect(r, 1)
    error_lines(r, {cut: "truncated JPEG data"})
    check(tree_sums(out) == {}, "a truncated JPEG was written by default")

    out2 = env.fresh_dir("out")
    r = run(env.imgpar, "--allow-truncated", cut, out2)
    expect(r, 0)
    error_lines(r, {cut: "warning: truncated JPEG data"})
    whole = env.fresh_dir("whole")
    expect(run(env.imgpar, env.sample("photo.jpg"), whole), 0)
    a = np.asarray(Image.open(os.path.join(out2, "photo.jpg")))
    b = np.asarray(Image.open(os.path.join(whole, "photo.jpg")))
    check(a.shape == b.shape, "shape %s, whole file %s" % (a.shape, b.shape))
    top = int(np.abs(a[:32].astype(int) - b[:32].astype(int)).max())
    check(top <= 2, "rows before the cut differ by %d from the whole file's" % top)


def check_bombs_address_space(env):
    """Decompression bombs are refused before allocating: run with an
    address-space limit far below their size (RLIMIT_AS; not possible under
    ASan, which reserves terabytes of shadow). Also --mem: an image larger
    than the budget is refused by the budget, not by a failed allocation."""
    d = env.fresh_dir("bombs")
    jpg = sample_bytes(env, "photo.jpg")
    bad = {
        put(d, "bomb-dim.png", png_bomb(100000, 100000)): "image 100000x100000 exceeds --max-dim 65535",
        put(d, "bomb-pixels.png", png_bomb(60000, 60000, 6)):
            "image 60000x60000 exceeds --max-pixels 268435456",
        put(d, "bomb.jpg", jpeg_resized(jpg, 65000, 65000)):
            "image 65000x65000 exceeds --max-pixels 268435456",
    }
    good = env.sample("gray8.png")
    limit = 1 << 30   # the bombs would need 10 to 40 GB

    def low_as():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    asan = is_asan(env.imgpar)
    pre = None if asan else low_as
    for opts in (["-j", "2", "--mem", "64M"], ["--procs", "-j", "2", "--mem", "64M"]):
        out = env.fresh_dir("out")
        r = run(env.imgpar, *opts, *bad, good, out, preexec_fn=pre)
        expect(r, 1)
        error_lines(r, bad)
        check(sorted(tree_sums(out)) == [b"gray8.png"], "%s: outputs %s" % (opts, sorted(tree_sums(out))))
    # Limits raised: a 20000x20000 RGBA bomb (1.6 GB of pixels) is refused by --mem.
    mem_bomb = put(d, "mem-bomb.png", png_bomb(20000, 20000, 6))
    out = env.fresh_dir("out")
    r = run(env.imgpar, "--max-pixels", "1G", "--mem", "64M", mem_bomb, good, out, preexec_fn=pre)
    expect(r, 1)
    error_lines(r, {mem_bomb: "more than --mem 64 MiB"})
    # --max-file-size: refused from the file's size, before it is read.
    big = env.sample("rgb8.png")
    out = env.fresh_dir("out")
    r = run(env.imgpar, "--mem", "64M", "--max-file-size", "20K", big, good, out, preexec_fn=pre)
    expect(r, 1)
    error_lines(r, {big: "file size %d exceeds --max-file-size 20480" % os.path.getsize(big)})
    check(sorted(tree_sums(out)) == [b"gray8.png"], "outputs %s" % sorted(tree_sums(out)))
    print("  bombs refused%s" % (" (ASan build: without RLIMIT_AS)" if asan else
                                 " under RLIMIT_AS of %d MiB" % (limit >> 20)))


def check_unreadable(env):
    """A file imgpar may not read: 'Permission denied', the rest goes on. As
    root, CAP_DAC_OVERRIDE is dropped from imgpar's bounding set (setpriv),
    so mode 000 applies to it."""
    if not can_drop_dac():
        raise AssertionError("cannot run imgpar without CAP_DAC_OVERRIDE (setpriv missing?)")
    wrap = NO_DAC if os.geteuid() == 0 else []
    d = env.fresh_dir("perm")
    os.chmod(d, 0o755)
    secret = put(d, "secret.png", sample_bytes(env, "gray8.png"))
    os.chmod(secret, 0)
    sub = os.path.join(d, "locked")
    os.mkdir(sub)
    put(sub, "inside.png", sample_bytes(env, "gray8.png"))
    os.chmod(sub, 0)
    good = put(d, "good.png", sample_bytes(env, "rgba8.png"))
    try:
        out = env.fresh_dir("out")
        r = run(env.imgpar, secret, good, out, wrap=wrap)
        expect(r, 1)
        error_lines(r, {secret: "Permission denied"})
        check(sorted(tree_sums(out)) == [b"good.png"], "outputs %s" % sorted(tree_sums(out)))
        # In a tree: the unreadable file gets its line as when named (it
        # cannot be sniffed, so it may be an image), the unreadable
        # directory too, and the walk goes on.
        out = env.fresh_dir("out")
        r = run(env.imgpar, "-r", d, out, wrap=wrap)
        expect(r, 1)
        error_lines(r, {os.fsencode(sub): "Permission denied", secret: "Permission denied"})
        check(sorted(tree_sums(out)) == [b"good.png"], "tree outputs %s" % sorted(tree_sums(out)))
    finally:
        os.chmod(sub, 0o755)
        os.chmod(secret, 0o644)


def check_special_files(env):
    """FIFOs, directories and devices never hang imgpar, whichever way they come."""
    d = env.fresh_dir("special")
    fifo = os.path.join(d, "pipe.png")
    os.mkfifo(fifo)
    os.mkdir(os.path.join(d, "folder.png"))
    good = put(d, "good.png", sample_bytes(env, "gray8.png"))
    bomb = put(d, "stb-probe-bomb.tga", stb_probe_bomb())   # sniffed, never an image
    # A directory INPUT is walked: its FIFO and subdirectory are skipped; the
    # non-image named like an image is a task that fails with its reason.
    for opts in ([], ["-r"]):
        out = env.fresh_dir("out")
        r = run(env.imgpar, *opts, d, out, timeout=20)
        expect(r, 1)
        error_lines(r, {bomb: "not a recognized image format"})
        check(sorted(tree_sums(out)) == [b"good.png"], "%s: outputs %s" % (opts, sorted(tree_sums(out))))
    # --files-from: each entry is opened as a file.
    lst = os.path.join(env.tmp, "list.txt")
    with open(lst, "w") as f:
        f.write("%s\n%s\n%s\n%s\n" % (fifo, os.path.join(d, "folder.png"), "/dev/zero", good.decode()))
    out = env.fresh_dir("out")
    r = run(env.imgpar, "--files-from", lst, out, timeout=20)
    expect(r, 1)
    error_lines(r, {fifo: "not a regular file", os.path.join(d, "folder.png"): "is a directory",
                    b"/dev/zero": "not a regular file"})
    # A FIFO with a writer that never writes, given as an argument.
    stop = threading.Event()

    def hold_open():
        try:
            fd = os.open(fifo, os.O_WRONLY)
        except OSError:
            return
        stop.wait(30)
        os.close(fd)

    t = threading.Thread(target=hold_open)
    t.start()
    try:
        out = env.fresh_dir("out")
        r = run(env.imgpar, fifo, good, out, timeout=20)
        expect(r, 1)
        error_lines(r, {fifo: "not a regular file"})
    finally:
        stop.set()
        try:  # unblock the writer if imgpar never opened the FIFO
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        except OSError:
            pass
        t.join(5)


if __name__ == "__main__":
    main([check_hostile_batch, check_truncated_prefixes, check_allow_truncated_jpeg,
          check_bombs_address_space, check_unreadable, check_special_files])

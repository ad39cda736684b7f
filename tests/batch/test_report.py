#!/usr/bin/python3
"""--report: JSON Lines, one object per input, every field checked: path,
status (ok|failed|skipped), error, output, format, input_format, width,
height, channels, bytes_in, bytes_out, seconds{read,decode,filter,encode,
write}; paths that are not UTF-8 still give valid JSON (\\u00XX per invalid
byte, exact bytes in path_hex/output_hex); '-' writes to stdout; the report
is written as results come (checked after a SIGINT by test_skip_resume).

usage: test_report.py IMGPAR SAMPLES
"""
import json
import os
import subprocess
import time

from batchutil import check, expect_rc, main, make_image, read_report

STAGES = ["read", "decode", "filter", "encode", "write"]


def latin1_escape(raw):
    """The documented display form: valid UTF-8 kept, each invalid byte U+00XX."""
    out, i = [], 0
    while i < len(raw):
        for n in (4, 3, 2, 1):
            try:
                out.append(raw[i:i + n].decode("utf-8"))
                i += n
                break
            except UnicodeDecodeError:
                continue
        else:
            out.append(chr(raw[i]))
            i += 1
    return "".join(out)


def check_fields(env):
    src = env.fresh_dir("in").encode()
    out = env.fresh_dir("o").encode()
    rgba = make_image(os.path.join(src, b"rgba.png").decode(), 33, 21, mode="RGBA")
    jpg = make_image(os.path.join(src, b"photo.jpg").decode(), 50, 40, fmt="JPEG")
    odd = os.path.join(src, b"caf\xe9-\xff \xc3\xa9\"q\\.png")   # latin-1 byte, 0xff, real UTF-8, quote, backslash
    with open(rgba, "rb") as f, open(odd, "wb") as g:
        g.write(f.read())
    bad = os.path.join(src, b"corrupt.png")
    with open(rgba, "rb") as f, open(bad, "wb") as g:
        g.write(f.read()[:60])
    skipme = make_image(os.path.join(src, b"skip.png").decode(), 10, 10, mode="L")
    with open(os.path.join(out, b"skip.png"), "wb") as f:
        f.write(b"an output newer than its input")
    future = time.time() + 10
    os.utime(os.path.join(out, b"skip.png"), (future, future))

    rep = os.path.join(env.tmp, "r.jsonl")
    p = subprocess.run([env.imgpar.encode(), b"--skip-existing", b"--report", rep.encode(),
                        rgba.encode(), jpg.encode(), odd, bad, skipme.encode(), out],
                       capture_output=True, timeout=60)
    check(p.returncode == 1, "exit %d: %s" % (p.returncode, p.stderr))
    with open(rep, "rb") as f:
        raw = f.read()
    check(raw.endswith(b"\n") and raw.count(b"\n") == 5, "not 5 lines: %r" % raw)
    recs = read_report(rep)
    by = {}
    for x in recs:
        check(set(x) >= {"path", "status", "error", "output", "format", "input_format", "width", "height",
                         "channels", "bytes_in", "bytes_out", "seconds"}, "missing fields in %s" % x)
        check(sorted(x["seconds"]) == sorted(STAGES), "seconds %s" % x["seconds"])
        check(all(isinstance(v, float) and v >= 0 for v in x["seconds"].values()), "seconds %s" % x["seconds"])
        raw_path = bytes.fromhex(x["path_hex"]) if "path_hex" in x else x["path"].encode()
        by[raw_path] = x

    check(sorted(by) == sorted([rgba.encode(), jpg.encode(), odd, bad, skipme.encode()]),
          "report paths %s" % sorted(by))

    def ok_record(inp, fmt, in_fmt, w, h, c):
        x = by[inp]
        o = os.path.join(out, os.path.basename(inp))
        check(x["status"] == "ok" and x["error"] is None, "%r: %s" % (inp, x))
        check(x["format"] == fmt and x["input_format"] == in_fmt, "%r formats %s" % (inp, x))
        check((x["width"], x["height"], x["channels"]) == (w, h, c), "%r dims %s" % (inp, x))
        check(x["bytes_in"] == os.path.getsize(inp), "%r bytes_in %s" % (inp, x["bytes_in"]))
        check(x["bytes_out"] == os.path.getsize(o), "%r bytes_out %s" % (inp, x["bytes_out"]))
        check(x["seconds"]["decode"] > 0 and x["seconds"]["encode"] > 0 and x["seconds"]["write"] > 0,
              "%r: zero stage times %s" % (inp, x["seconds"]))
        return x, o

    x, o = ok_record(rgba.encode(), "png", "png", 33, 21, 4)
    check(x["output"] == o.decode() and "path_hex" not in x and "output_hex" not in x, "rgba %s" % x)
    ok_record(jpg.encode(), "jpeg", "jpeg", 50, 40, 3)

    x, o = ok_record(odd, "png", "png", 33, 21, 4)
    check(x["path"] == latin1_escape(odd), "non-UTF-8 path shown as %r" % x["path"])
    check(bytes.fromhex(x["output_hex"]) == o, "output_hex %s" % x["output_hex"])
    check(b"\\u00e9" in raw and b"\\u00ff" in raw and "\xc3\xa9".encode("latin-1") in raw,
          "escaping: %r" % raw)

    x = by[bad]
    check(x["status"] == "failed" and isinstance(x["error"], str) and x["error"], "corrupt %s" % x)
    check(x["output"] == os.path.join(out, b"corrupt.png").decode(), "corrupt output %s" % x)
    check(x["bytes_out"] == 0 and not os.path.exists(os.path.join(out, b"corrupt.png")), "corrupt wrote %s" % x)
    check(x["error"] in p.stderr.decode("utf-8", "replace"), "error differs from stderr line")

    x = by[skipme.encode()]
    check(x["status"] == "skipped" and x["error"] is None and x["format"] == "png"
          and x["bytes_out"] == 0 and x["width"] is None, "skipped %s" % x)


def check_stdout_and_errors(env):
    src = env.fresh_dir("in")
    a = make_image(os.path.join(src, "a.png"))
    out = env.fresh_dir("o")
    r = env.run("--report", "-", a, out)
    expect_rc(r, 0)
    recs = [json.loads(line) for line in r.out.splitlines()]
    check(len(recs) == 1 and recs[0]["status"] == "ok" and recs[0]["path"] == a, "stdout report %s" % r.out)
    r = env.run("--report", os.path.join(env.tmp, "no", "such", "dir.jsonl"), a, out)
    expect_rc(r, 2)
    check("--report" in r.err, r.describe())


if __name__ == "__main__":
    main([check_fields, check_stdout_and_errors])

"""Helpers for the hostile suite: running imgpar with byte-string paths,
hostile files, the way imgpar prints a path in a message, and reports.
Builds on tests/cli/cliutil.py (check, main, Env, numpy references)."""
import hashlib
import json
import os
import struct
import subprocess
import sys
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cli"))
from cliutil import Fail, check, main  # noqa: E402,F401


class Run:
    def __init__(self, argv, proc):
        self.argv = argv
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr  # bytes
        self.lines = [l for l in proc.stderr.split(b"\n") if l]

    def describe(self):
        return "command: %r\nexit %d\nstderr:\n%s" % (
            [os.fsdecode(a) for a in self.argv], self.rc, self.err.decode("utf-8", "replace"))


def run(imgpar, *args, timeout=60, env=None, preexec_fn=None, wrap=(), stdin=None):
    """Runs imgpar (after the wrap command, e.g. setpriv) with str or bytes args."""
    argv = list(wrap) + [os.fsencode(imgpar)] + [os.fsencode(a) if isinstance(a, str) else a for a in args]
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                          env=env, preexec_fn=preexec_fn, stdin=stdin)
    r = Run(argv, proc)
    check(r.rc >= 0, "imgpar killed by signal %d\n%s" % (-r.rc, r.describe()))
    return r


def shim_env(log=None, **extra):
    """The environment of an imgpar run under the hostile shim (shim.c, the
    test's fourth argument), logging to log (emptied first) when given."""
    e = dict(os.environ)
    e["LD_PRELOAD"] = os.path.abspath(sys.argv[4])
    # GCC's ASan insists on coming first in the library list.
    e["ASAN_OPTIONS"] = e.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"
    if log:
        e["IMGPAR_SHIM_LOG"] = log
        if os.path.exists(log):
            os.unlink(log)
    e.update(extra)
    return e


def expect(r, rc):
    check(r.rc == rc, "expected exit %d\n%s" % (rc, r.describe()))


def shown(path):
    """A path as imgpar prints it in a message line (bytes): as it is when
    valid UTF-8 without control characters, else $'...' with escapes."""
    if isinstance(path, str):
        path = os.fsencode(path)
    try:
        text = path.decode("utf-8")
        if not any(ord(c) < 0x20 or ord(c) == 0x7f for c in text):
            return path
    except UnicodeDecodeError:
        pass
    out = b"$'"
    i = 0
    while i < len(path):
        # the longest valid UTF-8 sequence of 2-4 bytes at i, kept as it is
        for n in (4, 3, 2):
            seq = path[i:i + n]
            if len(seq) == n and seq[0] >= 0xc2:
                try:
                    seq.decode("utf-8")
                    out += seq
                    i += n
                    break
                except UnicodeDecodeError:
                    pass
        else:
            b = path[i]
            esc = {0x0a: b"\\n", 0x09: b"\\t", 0x0d: b"\\r", 0x5c: b"\\\\", 0x27: b"\\'"}
            if b in esc:
                out += esc[b]
            elif b < 0x20 or b >= 0x7f:
                out += b"\\x%02x" % b
            else:
                out += bytes([b])
            i += 1
    return out + b"'"


def error_lines(r, expected):
    """expected: {path(bytes): reason substring}. Checks that stderr is
    exactly one line 'imgpar: PATH: reason' per expected path."""
    check(len(r.lines) == len(expected), "expected %d stderr lines, got %d\n%s" % (
        len(expected), len(r.lines), r.describe()))
    for path, want in expected.items():
        prefix = b"imgpar: " + shown(path) + b": "
        hits = [l for l in r.lines if l.startswith(prefix)]
        check(len(hits) == 1, "expected one line starting %r\n%s" % (prefix, r.describe()))
        reason = hits[0][len(prefix):].decode("utf-8", "replace")
        check(want in reason, "%r: reason %r does not say %r" % (path, reason, want))


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def tree_sums(d):
    """{name (bytes): sha256} of every file under d, hidden ones included."""
    out = {}
    db = os.fsencode(d)
    for root, _, files in os.walk(db):
        for f in files:
            p = os.path.join(root, f)
            out[os.path.relpath(p, db)] = sha(p)
    return out


def read_report(path):
    """The records of a JSON Lines report; every line must parse."""
    recs = []
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            try:
                recs.append(json.loads(line))
            except ValueError as e:
                raise Fail("report line %d is not JSON (%s): %r" % (n, e, line))
    return recs


def report_path(rec, field="path"):
    """The exact bytes of a report's path field."""
    if field + "_hex" in rec:
        return bytes.fromhex(rec[field + "_hex"])
    return rec[field].encode("utf-8")


# ---- hostile files ----

def png_chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)


def png_bomb(w, h, color_type=0):
    """A ~100-byte PNG declaring w x h pixels."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) +
            png_chunk(b"IDAT", zlib.compress(b"\0" * 4096, 9)) + png_chunk(b"IEND", b""))


def png_zlib_overflow():
    """16x16 gray whose zlib stream inflates to 50 times the declared size."""
    raw = b"".join(b"\0" + bytes([0x80]) * 16 for _ in range(16)) * 50
    ihdr = struct.pack(">IIBBBBB", 16, 16, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw, 9))
            + png_chunk(b"IEND", b""))


def jpeg_sof(data):
    """Offset of the first SOF0/1/2 marker."""
    i = 2
    while True:
        i = data.index(b"\xff", i)
        if data[i + 1] in (0xc0, 0xc1, 0xc2):
            return i
        i += 1


def jpeg_resized(data, w, h):
    d = bytearray(data)
    i = jpeg_sof(d)
    d[i + 5:i + 9] = struct.pack(">HH", h, w)
    return bytes(d)


def jpeg_bad_huffman(data):
    """The first DHT's 16 code counts set to 64 each (1024 codes > 256)."""
    d = bytearray(data)
    i = d.index(b"\xff\xc4")
    d[i + 5:i + 21] = bytes([64] * 16)
    return bytes(d)


def jpeg_oversubscribed_dht(data):
    """The first DHT replaced by one DC table with 3 codes of length 1
    (only 2 exist): a table no decoder can build."""
    d = bytearray(data)
    i = d.index(b"\xff\xc4")
    n = struct.unpack(">H", d[i + 2:i + 4])[0]
    seg = bytes([0x00]) + bytes([3] + [0] * 15) + bytes([0, 1, 2])
    return bytes(d[:i] + b"\xff\xc4" + struct.pack(">H", len(seg) + 2) + seg + d[i + 2 + n:])


def jpeg_bad_dht_index(data):
    """The first DHT's class/index byte set to 0x37 (class 3, table 7)."""
    d = bytearray(data)
    i = d.index(b"\xff\xc4")
    d[i + 4] = 0x37
    return bytes(d)


def stb_probe_bomb():
    """Not JPEG by imgpar's magic (FF D8 FF) but by stb_image's (FF... D8),
    with a DHT of 1024 codes: reaching stb's TGA probe, it would overflow
    stb's Huffman tables."""
    seg = bytes([0x00]) + bytes([64] * 16) + bytes(range(256)) * 4
    return b"\xff\xff\xd8\xff\xc4" + struct.pack(">H", len(seg) + 2) + seg + bytes(64)


def png_bad_crc(data):
    """The IHDR's width changed without fixing its CRC."""
    d = bytearray(data)
    d[16 + 3] ^= 0x01
    return bytes(d)


def is_asan(imgpar):
    """True for an AddressSanitizer build (RLIMIT_AS cannot be used there)."""
    with open(imgpar, "rb") as f:
        return b"__asan_init" in f.read()


def can_drop_dac():
    """setpriv exists and, run as root without CAP_DAC_OVERRIDE, is denied a mode-000 file."""
    return os.geteuid() != 0 or subprocess.run(
        ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "true"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


NO_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]

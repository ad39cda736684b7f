#!/usr/bin/python3
"""meson install puts everything where it belongs, and a program can be
built against the installed library with pkg-config alone.

Installs the build into a temporary DESTDIR and checks: the binary (self-
contained: it does not load libimgpar.so), the man page, the bash
completion, libimgpar shared (with its soname links) and static, the public
headers including version.h, and imgpar.pc. Then builds examples/filter_one.c
and examples/batch.c with `pkg-config --cflags --libs imgpar` (PKG_CONFIG_
SYSROOT_DIR pointing into DESTDIR), once against the shared library and once
statically, runs them on samples/ and compares their outputs with imgpar's,
byte for byte; checks IP_VERSION_STRING == ip_version() == the meson version,
and that the shared library references no stdout/stderr/printf/exit (the
library never prints or exits).
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL " + msg)
    return cond


def run(argv, expect_fail=False, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, **kw)
    if p.returncode != 0 and not expect_fail:
        print("command failed (%d): %s\n%s%s" % (p.returncode, " ".join(argv), p.stdout, p.stderr))
    return p


def main():
    ap = argparse.ArgumentParser()
    for a in ("meson", "build", "source", "cc", "version", "imgpar", "prefix", "bindir", "libdir",
              "includedir", "mandir", "datadir"):
        ap.add_argument("--" + a, required=True)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="imgpar-install-")
    try:
        dest = os.path.join(tmp, "dest")
        p = run([a.meson, "install", "-C", a.build, "--no-rebuild", "--quiet", "--destdir", dest])
        if not check(p.returncode == 0, "meson install failed"):
            return

        def inst(first, *rest):
            # meson's dirs are relative to the prefix unless configured absolute
            base = dest + (first if os.path.isabs(first) else os.path.join(a.prefix, first))
            return os.path.join(base, *rest)

        libdir = inst(a.libdir)
        ver = a.version
        major = ver.split(".")[0]
        expect = {
            "binary": inst(a.bindir, "imgpar"),
            "man page": inst(a.mandir, "man1", "imgpar.1"),
            "bash completion": inst(a.datadir, "bash-completion", "completions", "imgpar"),
            "shared library": os.path.join(libdir, "libimgpar.so." + ver),
            "soname link": os.path.join(libdir, "libimgpar.so." + major),
            "dev link": os.path.join(libdir, "libimgpar.so"),
            "static library": os.path.join(libdir, "libimgpar.a"),
            "pkg-config file": os.path.join(libdir, "pkgconfig", "imgpar.pc"),
        }
        for h in ("error", "image", "codec", "filter", "exec", "pipeline", "version", "bench"):
            expect["header %s.h" % h] = inst(a.includedir, "imgpar", h + ".h")
        for what, path in expect.items():
            check(os.path.exists(path), "%s not installed at %s" % (what, path))
        if failures:
            return

        # The installed binary runs and does not need libimgpar.so.
        p = run([expect["binary"], "--version"])
        check(p.returncode == 0 and p.stdout == "imgpar %s (libimgpar %s)\n" % (ver, ver),
              "installed imgpar --version: %r" % p.stdout)
        p = run(["ldd", expect["binary"]])
        check(p.returncode == 0 and "libimgpar" not in p.stdout, "the binary links libimgpar.so:\n" + p.stdout)
        for what, src in (("man page", "doc/imgpar.1"), ("bash completion", "contrib/bash-completion/imgpar")):
            with open(expect[what], "rb") as f, open(os.path.join(a.source, src), "rb") as g:
                check(f.read() == g.read(), "installed %s differs from %s" % (what, src))

        # The library never prints or exits: no stdio streams, no printf/puts/exit.
        p = run(["nm", "-D", "--undefined-only", expect["shared library"]])
        syms = {line.split()[-1].split("@")[0] for line in p.stdout.splitlines() if line.strip()}
        bad = syms & {"stdout", "stderr", "printf", "vprintf", "puts", "putchar", "perror", "exit",
                      "psignal", "psiginfo", "err", "errx", "warn", "warnx", "error", "error_at_line"}
        check(p.returncode == 0 and not bad, "libimgpar.so references %s" % sorted(bad))

        # It exports exactly the functions the installed headers declare:
        # no internal ip__ helpers, no bundled stb_image.
        declared = set()
        for key, path in expect.items():
            if key.startswith("header "):
                with open(path, encoding="utf-8") as f:
                    text = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
                declared |= set(re.findall(r"^[^#\s][^;{}()]*?\b(ip_[a-z][a-z0-9_]*)\s*\(", text, flags=re.M))
        p = run(["nm", "-D", "--defined-only", expect["shared library"]])
        exported = {line.split()[-1].split("@")[0] for line in p.stdout.splitlines() if line.strip()}
        check(p.returncode == 0 and len(declared) > 40 and exported == declared,
              "libimgpar.so exports %s more and %s fewer than the headers declare (%d declared)"
              % (sorted(exported - declared)[:10], sorted(declared - exported)[:10], len(declared)))

        env = dict(os.environ, PKG_CONFIG_SYSROOT_DIR=dest,
                   PKG_CONFIG_PATH=os.path.join(libdir, "pkgconfig"), PKG_CONFIG_LIBDIR="/nonexistent")
        # System .pc files (libpng, libjpeg) are needed for --static: keep the default path too.
        syspc = run(["pkg-config", "--variable", "pc_path", "pkg-config"]).stdout.strip()
        env["PKG_CONFIG_LIBDIR"] = syspc
        p = run(["pkg-config", "--modversion", "imgpar"], env=env)
        check(p.stdout.strip() == ver, "pkg-config --modversion imgpar: %r" % p.stdout)
        cflags = run(["pkg-config", "--cflags", "imgpar"], env=env).stdout.split()
        libs = run(["pkg-config", "--libs", "imgpar"], env=env).stdout.split()
        static_libs = run(["pkg-config", "--static", "--libs", "imgpar"], env=env).stdout.split()
        check(any(f.startswith("-I" + dest) for f in cflags), "cflags %s do not point into DESTDIR" % cflags)
        check("-limgpar" in libs and "-limgpar" in static_libs, "libs %s / %s" % (libs, static_libs))
        static_libs = ["-l:libimgpar.a" if f == "-limgpar" else f for f in static_libs]

        ex = os.path.join(a.source, "examples")
        bins = {}
        for prog in ("filter_one", "batch"):
            for kind, lflags in (("shared", libs), ("static", static_libs)):
                out = os.path.join(tmp, "%s-%s" % (prog, kind))
                p = run([a.cc, "-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-O2",
                         os.path.join(ex, prog + ".c"), "-o", out] + cflags + lflags, env=env)
                check(p.returncode == 0, "building examples/%s.c (%s) failed" % (prog, kind))
                bins[prog, kind] = out
        if failures:
            return
        for prog in ("filter_one", "batch"):
            p = run(["ldd", bins[prog, "static"]])
            check("libimgpar" not in p.stdout, "%s-static loads libimgpar.so" % prog)
            p = run(["ldd", bins[prog, "shared"]], env=dict(os.environ, LD_LIBRARY_PATH=libdir))
            check(os.path.join(libdir, "libimgpar.so." + major) in p.stdout,
                  "%s-shared does not load the installed libimgpar.so:\n%s" % (prog, p.stdout))

        samples = os.path.join(a.source, "samples")
        inputs = [os.path.join(samples, n) for n in ("rgb8.png", "rgba8.png", "photo.jpg")]
        ref = os.path.join(tmp, "ref")
        p = run([a.imgpar, "-j", "2"] + inputs + [ref])
        check(p.returncode == 0, "imgpar reference run failed")
        run_env = dict(os.environ, LD_LIBRARY_PATH=libdir)
        for kind in ("shared", "static"):
            # filter_one: one PNG, same chain and encoder as imgpar's default.
            out = os.path.join(tmp, "one-%s.png" % kind)
            p = run([bins["filter_one", kind], inputs[0], out], env=run_env)
            check(p.returncode == 0 and "rgb8.png (png, 256x192, 3 channels)" in p.stdout,
                  "filter_one (%s): %r" % (kind, p.stdout))
            check(os.path.exists(out) and open(out, "rb").read() == open(os.path.join(ref, "rgb8.png"), "rb").read(),
                  "filter_one (%s) output differs from imgpar's" % kind)
            p = run([bins["filter_one", kind], os.path.join(samples, "nope.png"), out], expect_fail=True, env=run_env)
            check(p.returncode == 1 and "No such file" in p.stderr, "filter_one on a missing file: %r" % p.stderr)
            # batch: the whole pipeline with a per-file callback.
            outdir = os.path.join(tmp, "out-batch-%s" % kind)
            os.makedirs(outdir)
            p = run([bins["batch", kind], outdir] + inputs + [os.path.join(samples, "missing.png")], expect_fail=True,
                    env=run_env)
            check(p.returncode == 1, "batch (%s) exit %d, expected 1 (one missing input)" % (kind, p.returncode))
            lines = p.stdout.splitlines()
            check(len(lines) == 5 and sum(" ok " in x for x in lines) == 3 and
                  sum(" failed " in x for x in lines) == 1 and lines[-1].startswith("3 ok, 1 failed"),
                  "batch (%s) output:\n%s" % (kind, p.stdout))
            check(sorted(x.split("]")[0] + "]" for x in lines[:4]) == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"],
                  "batch (%s) progress counts:\n%s" % (kind, p.stdout))
            for n in os.listdir(ref):
                check(open(os.path.join(outdir, n), "rb").read() == open(os.path.join(ref, n), "rb").read(),
                      "batch (%s): %s differs from imgpar's" % (kind, n))

        # Version macro and function agree with meson's project version.
        vprog = os.path.join(tmp, "v.c")
        with open(vprog, "w") as f:
            f.write('#include <stdio.h>\n#include <string.h>\n#include <imgpar/version.h>\n'
                    'int main(void) { printf("%s %s %u\\n", IP_VERSION_STRING, ip_version(), ip_version_number());'
                    ' return strcmp(IP_VERSION_STRING, ip_version()) != 0 || ip_version_number() != IP_VERSION_NUMBER; }\n')
        p = run([a.cc, vprog, "-o", vprog[:-2]] + cflags + libs, env=env)
        if check(p.returncode == 0, "version program does not build"):
            mj, mn, pt = (int(x) for x in ver.split("."))
            p = run([vprog[:-2]], env=run_env)
            check(p.returncode == 0 and p.stdout == "%s %s %d\n" % (ver, ver, mj * 10000 + mn * 100 + pt),
                  "version: %r" % p.stdout)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
    print("%d failed checks" % len(failures) if failures else "ok: install, pkg-config, examples")
    sys.exit(1 if failures else 0)

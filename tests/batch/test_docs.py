#!/usr/bin/python3
"""Documentation stays accurate: --help lists the batch options grouped by
stage and the exit statuses; every long option of --help is accepted by the
parser, documented in doc/imgpar.1 (which renders without warnings) and
offered by contrib/bash-completion/imgpar (which really completes).

usage: test_docs.py IMGPAR SAMPLES SOURCE_ROOT
"""
import os
import re
import shutil
import subprocess
import sys

from batchutil import check, expect_rc, main

ROOT = os.path.abspath(sys.argv[3]) if len(sys.argv) > 3 else None


def help_options(env):
    r = env.run("--help")
    expect_rc(r, 0)
    return r.out, sorted(set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", r.out)))


def check_help(env):
    text, opts = help_options(env)
    sections = re.findall(r"^([A-Z][^\n]*):\n", text, re.M)
    check(sections[:3] == ["Inputs and outputs", "Filters, applied in the order given (default: --gray --blur 2)",
                           "Codecs"], "help sections %s" % sections)
    check("Reporting" in sections and "Execution (every strategy writes exactly the same bytes)" in sections,
          "help sections %s" % sections)
    for o in ["--recursive", "--follow-symlinks", "--files-from", "--null", "--out-pattern", "--skip-existing",
              "--dry-run", "--shard", "--report"]:
        check(o in opts, "%s missing from --help" % o)
    for short in ["-r, --recursive", "-0, --null", "-j, --jobs", "-v, --verbose", "-q, --quiet"]:
        check(short in text, "%r missing from --help" % short)
    for status in ["0 all files succeeded", "1 some files failed", "2 usage error", "3 could not start",
                   "130 interrupted"]:
        check(re.search(r"\s+".join(map(re.escape, status.split())), text), "exit status %r not in --help" % status)
    check(max(len(line) for line in text.splitlines()) <= 90, "a --help line is wider than 90 columns")
    # Every option entry has an example command line under it.
    entries, current = {}, None
    for line in text.splitlines():
        m = re.match(r"  (-\S+?),? ", line)
        if m and not line.startswith("   "):
            current = m.group(1)
            entries[current] = False
        elif current and re.match(r" {24}(imgpar|find) ", line):
            entries[current] = True
    missing = [o for o, ex in entries.items() if not ex]
    check(len(entries) > 30 and not missing, "--help options without an example: %s" % missing)


def check_every_option_accepted(env):
    _, opts = help_options(env)
    takes_arg = {"--files-from": "-", "--out-pattern": "{stem}.{ext}", "--shard": "0/1", "--report": "-",
                 "--blur": "1", "--box": "1", "--format": "png", "--quality": "90", "--png-level": "6",
                 "--decoder": "stb", "--max-pixels": "100", "--max-dim": "10", "--max-file-size": "1M",
                 "--mem": "64M", "--jobs": "1", "--split": "auto", "--io-threads": "1", "--writers": "1",
                 "--queue": "1"}
    for o in opts:
        if o in ("--help", "--version", "--files-from", "--null"):
            continue
        args = [o, takes_arg[o]] if o in takes_arg else [o]
        r = env.run(*args, "--dry-run", env.samples, os.path.join(env.tmp, "x"))
        check(r.rc == 0, "option %s from --help is not accepted\n%s" % (o, r.describe()))
    r = env.run("--version")
    check(r.rc == 0 and re.fullmatch(r"imgpar \S+ \(libimgpar \S+\)\n", r.out), "--version: %r" % r.out)


def check_man_page(env):
    _, opts = help_options(env)
    with open(os.path.join(ROOT, "doc", "imgpar.1")) as f:
        man = f.read()
    plain = man.replace("\\-", "-")
    for o in opts:
        check(o in plain, "%s is not in doc/imgpar.1" % o)
    for status in ["130", "EXIT STATUS", "path_hex", "{dir}", "{stem}", "{ext}", "{n}"]:
        check(status in plain, "%r not in the man page" % status)
    groff = shutil.which("groff")
    check(groff is not None, "groff not found (needed to check the man page renders)")
    p = subprocess.run([groff, "-man", "-ww", "-z", os.path.join(ROOT, "doc", "imgpar.1")],
                       capture_output=True, text=True)
    check(p.returncode == 0 and p.stderr == "", "groff warnings:\n" + p.stderr)


def check_completion(env):
    _, opts = help_options(env)
    path = os.path.join(ROOT, "contrib", "bash-completion", "imgpar")
    with open(path) as f:
        comp = f.read()
    for o in opts:
        check(re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(o), comp), "%s is not completed" % o)

    def complete(*words):
        script = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _imgpar; '
                  'printf "%s\\n" "${COMPREPLY[@]}"')
        p = subprocess.run(["bash", "-c", script, "bash", path] + list(words), capture_output=True, text=True)
        check(p.returncode == 0, "completion failed: %s" % p.stderr)
        return p.stdout.split()

    check(complete("imgpar", "--sk") == ["--skip-existing"], "--sk completes to %s" % complete("imgpar", "--sk"))
    check(sorted(complete("imgpar", "--format", "")) == ["jpg", "png"], "--format values")
    check("--follow-symlinks" in complete("imgpar", "-r", "--fo"), "--fo after -r")


if __name__ == "__main__":
    main([check_help, check_every_option_accepted, check_man_page, check_completion])

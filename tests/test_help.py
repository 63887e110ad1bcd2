#!/usr/bin/env python3
"""test_help — what each program's --help prints is what README.md shows for it: README's
"Programs" section holds, for every program, a block
    ```text
    $ NAME --help
    <the exact output>
    ```
and this runs NAME --help and compares, saying which lines differ. With --quote FILE it also
checks that README.md quotes FILE whole in a ```c block (samples/embed.c, its example).
Usage: test_help.py README.md [--quote FILE] PROGRAM..."""
import difflib, os, re, subprocess, sys

if len(sys.argv) < 3:
    sys.exit("usage: test_help.py README.md [--quote FILE] PROGRAM...")
readme = open(sys.argv[1], encoding="utf-8").read()
programs = sys.argv[2:]
failures = 0
if programs[:1] == ["--quote"]:
    quoted = open(programs[1], encoding="utf-8").read()
    if "```c\n" + quoted + "```" not in readme:
        print("FAIL README.md does not quote %s whole (a ```c block of exactly its text)" % programs[1], file=sys.stderr)
        failures += 1
    else:
        print("  README.md quotes %s (%d lines)" % (os.path.basename(programs[1]), quoted.count("\n")))
    programs = programs[2:]
blocks = {m.group(1): m.group(2) for m in re.finditer(r"```text\n\$ (\S+) --help\n(.*?)```", readme, re.S)}
for exe in programs:
    name = os.path.basename(exe)
    p = subprocess.run([exe, "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    out = p.stdout.decode()
    if p.returncode != 0 or not out:
        print("FAIL %s --help exited %d with %d bytes of output" % (name, p.returncode, len(out)), file=sys.stderr)
        failures += 1
    elif name not in blocks:
        print("FAIL README.md has no block for %s --help (```text, then $ %s --help, then its output)" % (name, name),
              file=sys.stderr)
        failures += 1
    elif blocks[name] != out:
        diff = difflib.unified_diff(blocks[name].splitlines(), out.splitlines(), "README.md", name + " --help", lineterm="")
        print("FAIL README.md's %s --help differs from the program's:\n%s" % (name, "\n".join(diff)), file=sys.stderr)
        failures += 1
    else:
        print("  %s --help: %d lines, as in README.md" % (name, out.count("\n")))
print("test_help: %s" % ("FAILED (%d)" % failures if failures else "passed"))
sys.exit(1 if failures else 0)

#!/usr/bin/env python3
"""test_progress — cldp-train's progress, run for real: on a terminal (a pty 60 columns wide) one
line per epoch redrawn in place with samples/s and ETA, never wider than the terminal, erased
before the epoch's result line; through a pipe plain lines only; --quiet only the summary, on a
terminal too; --json's line unchanged (its keys, and the checksum of the same run without a pty).
Usage: test_progress.py CLDP-TRAIN"""
import fcntl, json, os, re, struct, subprocess, sys, termios

COLS = 60
ARGS = ["--embedded", "--hidden", "32", "--batch", "50", "--epochs", "2", "--seed", "3"]
JSON_KEYS = {"test_accuracy", "final_loss", "samples_per_s", "epochs", "batch", "seconds", "dataset", "devices",
             "model", "input", "loss", "param_checksum"}
failures = 0


def fail(msg, out=""):
    global failures
    failures += 1
    print("FAIL " + msg + ("\n--- output:\n" + repr(out) if out else ""), file=sys.stderr)


def run_pty(extra):
    """Runs cldp-train with stdout on a pty; returns (exit code, what it wrote there)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, COLS, 0, 0))
    p = subprocess.Popen([train] + ARGS + extra, stdout=slave, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks = []
    while True:
        try:
            b = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not b:
            break
        chunks.append(b)
    os.close(master)
    p.wait(timeout=300)
    return p.returncode, b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")


def run_pipe(extra):
    p = subprocess.run([train] + ARGS + extra, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    return p.returncode, p.stdout.decode()


def last_json(out):
    line = [l for l in out.split("\n") if l.startswith("{")]
    return json.loads(line[-1]) if line else None


if len(sys.argv) != 2:
    sys.exit("usage: test_progress.py CLDP-TRAIN")
train = sys.argv[1]

# ---- on a terminal
rc, out = run_pty(["--json"])
if rc != 0:
    fail("cldp-train on a pty exited %d" % rc, out)
for ep in (1, 2):
    draws = re.findall(r"\repoch %d/2  step (\d+)/40  \d+ samples/s  ETA \d+ s \(run \d+ s\)" % ep, out)
    if not draws:
        fail("no progress line for epoch %d (\\r, step, samples/s, ETA)" % ep, out)
    elif draws[-1] != "40":
        fail("epoch %d's progress line did not reach its last step (%s)" % (ep, draws[-1]), out)
    else:
        print("  epoch %d: the progress line drawn %d time(s), last at step %s/40" % (ep, len(draws), draws[-1]))
    if not re.search(r"\r\x1b\[Kepoch +%d  loss" % ep, out):
        fail("epoch %d's result line does not replace the progress line (\\r, erase, then the line)" % ep, out)
visible = re.sub(r"\x1b\[K", "", out)
widths = [len(p) for p in re.split(r"[\r\n]", visible) if p.startswith("epoch ") and "/2  step" in p]
if widths and max(widths) > COLS - 1:
    fail("a progress line is %d characters wide on a %d-column terminal" % (max(widths), COLS), visible)
elif widths:
    print("  progress lines %d-%d characters wide on a %d-column terminal" % (min(widths), max(widths), COLS))
j_tty = last_json(out)

# ---- through a pipe: plain lines, as before
rc, out = run_pipe(["--json"])
if rc != 0:
    fail("cldp-train through a pipe exited %d" % rc, out)
if "\r" in out or "\x1b" in out or "ETA" in out:
    fail("through a pipe cldp-train redraws lines (\\r, escapes or ETA in its output)", out)
if not re.search(r"^epoch +1  loss .*^epoch +2  loss ", out, re.S | re.M):
    fail("through a pipe the epochs' plain lines are missing", out)
j_pipe = last_json(out)
for name, j in (("on a pty", j_tty), ("through a pipe", j_pipe)):
    if not j or set(j) != JSON_KEYS:
        fail("--json %s: the keys are %s, not %s" % (name, sorted(j) if j else None, sorted(JSON_KEYS)))
if j_tty and j_pipe and j_tty["param_checksum"] != j_pipe["param_checksum"]:
    fail("the same run gives %s on a pty and %s through a pipe" % (j_tty["param_checksum"], j_pipe["param_checksum"]))
elif j_pipe:
    print("  --json: the same keys and checksum %s on a pty and through a pipe" % j_pipe["param_checksum"])

# ---- --quiet: only the summary, on a terminal too
for how, run in (("on a pty", run_pty), ("through a pipe", run_pipe)):
    rc, out = run(["--quiet"])
    lines = [l for l in out.split("\n") if l]
    if rc != 0 or len(lines) != 1 or not lines[0].startswith("cldp-train: test accuracy") or "\r" in out:
        fail("--quiet %s should print only the summary line" % how, out)
    else:
        print("  --quiet %s: %s" % (how, lines[0]))
rc, out = run_pty(["--quiet", "--json"])
lines = [l for l in out.split("\n") if l]
if rc != 0 or len(lines) != 2 or not lines[1].startswith("{") or set(json.loads(lines[1])) != JSON_KEYS:
    fail("--quiet --json should print the summary and the JSON line", out)

print("test_progress: %s" % ("FAILED (%d)" % failures if failures else "passed"))
sys.exit(1 if failures else 0)

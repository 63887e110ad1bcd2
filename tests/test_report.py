#!/usr/bin/env python3
"""test_report — cldp-train --report, run for real on two devices: the HTML page parses, holds
every plot (an svg with its id, its plotting area and its marks), refers to nothing outside itself
(no http(s), no src, href, url() or script), escapes what it shows, and its numbers are those
cldp-train printed (each epoch's line, the --json line), its parameters those of a run without
it; a one-epoch run draws single points, a 160-epoch one means over pairs; with --trace its
timeline is that recording's step, event for event; SIGINT and a failed step write it with what
was gathered; a dropped device keeps its own row; a bad path, or a file that is not a report
(without --force), is refused before training. Then headless Chromium renders it and the
screenshot must show each series' colour inside each plot's area (the page's boxes sit at fixed
places, read from the page itself). Without Chromium that last part is a skip (exit 77), said
as SKIP.
Usage: test_report.py CLDP-TRAIN"""
import html.parser, json, os, re, shutil, signal, struct, subprocess, sys, tempfile, zlib

ARGS = ["--embedded", "--hidden", "32", "--batch", "50", "--seed", "7"]
PLOTS = ["plot-loss", "plot-accuracy", "plot-throughput", "plot-share", "plot-devices", "plot-timeline"]
failures = 0


def fail(msg, out=""):
    global failures
    failures += 1
    print("FAIL " + msg + ("\n--- output:\n" + out[-3000:] if out else ""), file=sys.stderr)


def run(extra, timeout=300):
    p = subprocess.run([train] + ARGS + extra, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace")


class Page(html.parser.HTMLParser):
    """The elements of the page (tag, attributes, text inside, the svg it lies in), checking
    that every element opened is closed in order."""
    VOID = {"meta", "br", "img", "input", "link", "hr"}  # svg's elements close themselves (<rect/>) or are closed

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements, self.stack, self.errors, self.svg = [], [], [], None

    def handle_starttag(self, tag, attrs):
        e = {"tag": tag, "attrs": dict(attrs), "text": "", "svg": self.svg}
        self.elements.append(e)
        if tag == "svg":
            self.svg = e["attrs"].get("id")
        if tag not in self.VOID:
            self.stack.append(e)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1]["tag"] != tag:
            self.errors.append("</%s> closes <%s>" % (tag, self.stack[-1]["tag"] if self.stack else "nothing"))
            return
        self.stack.pop()
        if tag == "svg":
            self.svg = next((x["attrs"].get("id") for x in reversed(self.stack) if x["tag"] == "svg"), None)

    def handle_data(self, data):
        for e in self.stack:
            e["text"] += data


def parse(path):
    text = open(path, encoding="utf-8").read()
    p = Page()
    p.feed(text)
    p.close()
    if p.stack:
        p.errors.append("unclosed: " + ", ".join("<%s>" % e["tag"] for e in p.stack))
    return text, p


def find(page, tag, **attrs):
    return [e for e in page.elements if e["tag"] == tag and all(e["attrs"].get(k) == v for k, v in attrs.items())]


def classes(e):
    return e["attrs"].get("class", "").split()


def table_rows(page, table_id):
    """The rows of a table as lists of cell texts (header row left out)."""
    rows, inside = [], False
    for e in page.elements:
        if e["tag"] == "table":
            inside = e["attrs"].get("id") == table_id
        elif inside and e["tag"] == "tr":
            rows.append([])
        elif inside and e["tag"] == "td":
            rows[-1].append(e["text"].strip())
    return [r for r in rows if r]


def check_page(path, what):
    """The checks every report must pass; returns the parsed page (or None)."""
    if not os.path.exists(path):
        fail("%s: no report at %s" % (what, path))
        return None
    text, page = parse(path)
    for err in page.errors:
        fail("%s: the page is not well formed: %s" % (what, err))
    low = text.lower()
    for bad in ("http://", "https://", "<script", " src=", " href=", "url(", "@import", "<link", "<img", "<iframe"):
        if bad in low:
            fail("%s: the page refers outside itself or scripts: %r found" % (what, bad))
    for pid in PLOTS:
        svgs = find(page, "svg", id=pid)
        if len(svgs) != 1 or "plot" not in classes(svgs[0]):
            fail("%s: no <svg id=%s class=plot>" % (what, pid))
            continue
        inside = [e for e in page.elements if e["svg"] == pid]
        if not any("plot-area" in classes(e) for e in inside):
            fail("%s: %s has no plot-area rect" % (what, pid))
        if not any(e["tag"] == "text" and "axislabel" in classes(e) for e in inside):
            fail("%s: %s has no axis label" % (what, pid))
        if not any("legend-swatch" in classes(e) for e in inside):
            fail("%s: %s has no legend" % (what, pid))
    return page


def markers(page, pid):
    """(series name, x, value, cy) of each marker of a line chart, from their tooltips."""
    out = []
    for e in page.elements:
        if e["svg"] == pid and e["tag"] == "circle" and "mark" in classes(e):
            m = re.match(r"(.*) at ([-\d.e+]+): ([-\d.e+]+)$", e["text"].strip())
            if m:
                out.append((m.group(1), float(m.group(2)), float(m.group(3)), float(e["attrs"]["cy"])))
    return out


def check_markers(page, pid, what, expect):
    """The markers are where their values say (higher value, higher up) and hold the values of
    `expect`: {series: {epoch: value}}."""
    ms = markers(page, pid)
    got = {}
    for name, x, v, cy in ms:
        got.setdefault(name, {})[int(x)] = v
    for name, want in expect.items():
        have = got.get(name, {})
        if set(have) != set(want):
            fail("%s: %s's %s markers are at epochs %s, not %s" % (what, pid, name, sorted(have), sorted(want)))
            continue
        for ep, v in want.items():
            if abs(have[ep] - v) > 6e-5 * max(1, abs(v)):
                fail("%s: %s's %s at epoch %d is %g; cldp-train printed %g" % (what, pid, name, ep, have[ep], v))
    for a in ms:
        for b in ms:
            if a[2] > b[2] + 1e-9 and not a[3] < b[3]:
                fail("%s: in %s the value %g is drawn at y=%g, not above %g at y=%g" % (what, pid, a[2], a[3], b[2], b[3]))
                return


# ---- a PNG reader (8-bit RGB or RGBA, not interlaced: what Chromium writes)
def read_png(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, hdr = 8, [], None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", data[pos + 8:pos + 8 + n])
        elif kind == b"IDAT":
            idat.append(data[pos + 8:pos + 8 + n])
        pos += 12 + n
    w, h, depth, ctype, _, _, interlace = hdr
    if depth != 8 or ctype not in (2, 6) or interlace:
        raise ValueError("a PNG of depth %d, colour type %d, interlace %d" % (depth, ctype, interlace))
    bpp = 3 if ctype == 2 else 4
    raw, stride, rows = zlib.decompress(b"".join(idat)), w * bpp, []
    prev = bytearray(stride)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif f == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif f == 3:
            for i in range(stride):
                line[i] = (line[i] + ((line[i - bpp] if i >= bpp else 0) + prev[i]) // 2) & 255
        elif f == 4:
            for i in range(stride):
                a, b = (line[i - bpp] if i >= bpp else 0), prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return w, h, bpp, rows


def px_style(style, key):
    m = re.search(r"%s:(\d+)px" % key, style)
    return int(m.group(1)) if m else None


def check_pixels(page, png, what):
    w, h, bpp, rows = read_png(png)
    for pid in PLOTS:
        svg = find(page, "svg", id=pid)[0]
        box = [e for e in page.elements if e["tag"] == "figure" and e["attrs"].get("id") == "fig-" + pid[5:]]
        if not box:
            fail("%s: no figure box for %s" % (what, pid))
            continue
        left, top = px_style(box[0]["attrs"]["style"], "left"), px_style(box[0]["attrs"]["style"], "top")
        area = [e for e in page.elements if e["svg"] == pid and "plot-area" in classes(e)][0]["attrs"]
        x0, y0 = left + float(area["x"]) + 2, top + float(area["y"]) + 2  # inside the area's frame
        x1, y1 = x0 + float(area["width"]) - 4, y0 + float(area["height"]) - 4
        if x1 > w or y1 > h:
            fail("%s: %s's area (%d..%d, %d..%d) lies outside the %dx%d screenshot" % (what, pid, x0, x1, y0, y1, w, h))
            continue
        # what each mark colour should cover: rects by their size, lines and markers at least a few pixels
        want = {}
        for e in page.elements:
            if e["svg"] != pid or "mark" not in classes(e):
                continue
            a = e["attrs"]
            color = a.get("stroke") if e["tag"] == "path" else a.get("fill")
            if e["tag"] == "rect":  # less than a pixel high may draw nothing
                wd, ht = float(a["width"]), float(a["height"])
                size = max(1.0, wd) * (ht if ht >= 1 else 0)
            else:
                size = 60.0
            want[color] = want.get(color, 0) + size
        counts = {c: 0 for c in want}
        rgb = {c: (int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16)) for c in want}
        other = 0
        for y in range(int(y0), int(y1)):
            row = rows[y]
            for x in range(int(x0), int(x1)):
                p = row[x * bpp:x * bpp + 3]
                if p[0] > 245 and p[1] > 245 and p[2] > 245:
                    continue
                for c, (r, g, b) in rgb.items():
                    if abs(p[0] - r) <= 24 and abs(p[1] - g) <= 24 and abs(p[2] - b) <= 24:
                        counts[c] += 1
                        break
                else:
                    other += 1
        if not want:
            fail("%s: %s has no marks to draw" % (what, pid))
        for c, size in want.items():
            need = min(12, size * 0.3)
            if size >= 20 and counts[c] < need:
                fail("%s: %s: colour %s covers %d pixels of its area in the screenshot, expected %d or more" % (what, pid, c,
                                                                                                                counts[c], need))
        print("  %s: %s" % (pid, ", ".join("%s %d px" % (c, counts[c]) for c in sorted(counts))))
    hdr = find(page, "header", id="header")[0]["attrs"]["style"]
    hx, hy = px_style(hdr, "left"), px_style(hdr, "top")
    ink = sum(1 for y in range(hy, hy + 120) for x in range(hx, hx + 600) if min(rows[y][x * bpp:x * bpp + 3]) < 128)
    if ink < 500:
        fail("%s: the header shows %d dark pixels: its text is not drawn" % (what, ink))


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


if len(sys.argv) != 2:
    sys.exit("usage: test_report.py CLDP-TRAIN")
train = sys.argv[1]
tmp = tempfile.mkdtemp(prefix="cldp-report-")

# ---- a 3-epoch run on two devices: the page and its numbers
report = os.path.join(tmp, "run.html")
rc, out = run(["--epochs", "3", "--json", "--report", report])
if rc != 0 or "report written to " + report not in out:
    fail("cldp-train --report exited %d without saying it wrote the report" % rc, out)
page = check_page(report, "3 epochs")
lines = re.findall(r"^epoch +(\d+)  loss ([\d.]+)  train acc ([\d.]+)  test acc ([\d.]+)  test loss ([\d.]+)  (\d+) samples/s",
                   out, re.M)
js = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
if page and (len(lines) != 3 or not js):
    fail("cldp-train printed %d epoch lines and %d JSON lines, not 3 and 1" % (len(lines), len(js)), out)
elif page:
    rows = table_rows(page, "epochs")
    for line, row in zip(lines, rows):
        ep, loss, tacc, acc, tloss, sps = line
        want = [ep, loss, tacc, tloss, acc, sps]
        if row[:6] != want:
            fail("the report's epoch %s row is %s; cldp-train printed %s" % (ep, row[:6], want))
    if len(rows) != 3:
        fail("the report's table has %d epochs, not 3" % len(rows))
    elif abs(float(rows[-1][4]) - js[0]["test_accuracy"]) > 5e-5:
        fail("the report's final test accuracy %s differs from --json's %s" % (rows[-1][4], js[0]["test_accuracy"]))
    else:
        print("  3 epochs: the table's rows are cldp-train's lines; final test accuracy %s as --json says" % rows[-1][4])
    rc2, out2 = run(["--epochs", "3", "--json"])  # the step recorded for the timeline changes nothing
    js2 = [json.loads(l) for l in out2.splitlines() if l.startswith("{")]
    if rc2 != 0 or not js2 or js2[0]["param_checksum"] != js[0]["param_checksum"]:
        fail("the run without --report ends with %s, with it %s: the same parameters expected" %
             (js2[0]["param_checksum"] if js2 else None, js[0]["param_checksum"]))
    else:
        print("  the same parameters with and without --report (%s)" % js[0]["param_checksum"])
    summary = [e for e in page.elements if e["tag"] == "p" and "summary" in classes(e)]
    if not summary or "test accuracy %.4f after 3 epochs" % js[0]["test_accuracy"] not in summary[0]["text"]:
        fail("the report's summary line does not give the final test accuracy: %r" % (summary[0]["text"] if summary else None))
    series = lambda k: {int(l[0]): float(l[k]) for l in lines}
    check_markers(page, "plot-loss", "3 epochs", {"train": series(1), "test": series(4)})
    check_markers(page, "plot-accuracy", "3 epochs", {"train": series(2), "test": series(3)})
    devs = table_rows(page, "devices")
    ntr = int(re.search(r"(\d+) train / \d+ test samples", out).group(1))
    if len(devs) != 2 or sum(int(r[1]) for r in devs) != 3 * ntr or abs(sum(float(r[2]) for r in devs) - 1) > 2e-3:
        fail("the device table %s should have 2 devices computing 3 x %d samples, shares summing to 1" % (devs, ntr))
    # the timeline: the host's row, then one per device in rank order, each with its GEMMs, its
    # gradient copies and its part of the reduction, inside the step
    lanes = [e["text"] for e in page.elements if e["svg"] == "plot-timeline" and "lane" in classes(e)]
    bars = [e["attrs"] for e in page.elements if e["svg"] == "plot-timeline" and "mark" in classes(e)]
    if len(lanes) != 3 or not lanes[0].startswith("host") or not lanes[1].startswith("[0]") or not lanes[2].startswith("[1]"):
        fail("the timeline's rows are %s, not the host, [0] and [1]" % lanes)
    for lane in (1, 2):
        kinds = {b["data-kind"] for b in bars if b.get("data-lane") == str(lane)}
        for want in ("GEMM (CLBlast)", "transfers", "parameter write"):
            if want not in kinds:
                fail("the timeline's row of device %d has no %s bar (it has %s)" % (lane - 1, want, sorted(kinds)))
    if not any(b["data-kind"] == "reduce" for b in bars):
        fail("the timeline shows no reduce")
    title = [e["text"] for e in page.elements if e["svg"] == "plot-timeline" and "title" in classes(e)]
    print("  timeline: %d bars on %d rows: %s" % (len(bars), len(lanes), title[0] if title else "no title"))

# ---- one epoch (a single point per series), and escaping: the --checkpoint path is shown
odd = os.path.join(tmp, "a<b>&\"'.ckpt")
one = os.path.join(tmp, "one.html")
rc, out = run(["--epochs", "1", "--quiet", "--checkpoint", odd, "--report", one])
if rc != 0:
    fail("the one-epoch run with --checkpoint and --report exited %d" % rc, out)
page1 = check_page(one, "one epoch")
if page1:
    text = open(one, encoding="utf-8").read()
    facts = " ".join(e["text"] for e in page1.elements if e["tag"] == "dd")
    if odd not in facts or "a<b>" in text:
        fail("the --checkpoint path %r is not shown escaped in the report" % odd)
    ms = markers(page1, "plot-loss")
    if sorted((m[0], m[1]) for m in ms) != [("test", 1.0), ("train", 1.0)]:
        fail("a one-epoch run should draw one marker per loss series, not %s" % ms)
    else:
        print("  one epoch: one marker per series; the --checkpoint path escaped")

# ---- a long run (160 epochs of one step): the charts show means over pairs of epochs, the table
# every epoch
long = os.path.join(tmp, "long.html")
p = subprocess.run([train, "--embedded", "--hidden", "8", "--batch", "2000", "--epochs", "160", "--quiet", "--report", long],
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
pagel = check_page(long, "160 epochs")
if p.returncode != 0:
    fail("the 160-epoch run exited %d" % p.returncode, p.stdout.decode())
elif pagel:
    loss = [e for e in pagel.elements if e["svg"] == "plot-loss" and "line" in classes(e)]
    points = [len(re.findall(r"[ML]", e["attrs"]["d"])) for e in loss]
    labels = [e["text"] for e in pagel.elements if e["svg"] == "plot-loss" and "axislabel" in classes(e)]
    rows = table_rows(pagel, "epochs")
    if points != [80, 80] or not any("mean over 2 epochs" in l for l in labels) or len(rows) != 160:
        fail("160 epochs: the loss lines have %s points (not 80 each), x label %s, %d table rows" % (points, labels, len(rows)))
    else:
        print("  160 epochs: 80 points per line (means over 2 epochs), 160 rows in the table")

# ---- with --trace: the timeline is that recording's step, event for event
traced, trace = os.path.join(tmp, "traced.html"), os.path.join(tmp, "trace.json")
rc, out = run(["--epochs", "1", "--quiet", "--report", traced, "--trace", trace])
paget = check_page(traced, "with --trace")
if rc != 0 or not os.path.exists(trace):
    fail("cldp-train --report --trace exited %d, trace file %s" % (rc, "written" if os.path.exists(trace) else "missing"), out)
elif paget:
    title = " ".join(e["text"] for e in paget.elements if e["svg"] == "plot-timeline" and "title" in classes(e))
    m = re.search(r"step (\d+) of the run", title)
    events = [e for e in json.load(open(trace))["traceEvents"] if e.get("ph") == "X"]
    bars = [e for e in paget.elements if e["svg"] == "plot-timeline" and "mark" in classes(e)]
    inside = [e for e in events if m and e.get("args", {}).get("step") == int(m.group(1))]
    if not m or not inside or len(bars) != len(inside):
        fail("the timeline (%r) has %d bars; the --trace file has %d events of that step" % (title, len(bars), len(inside)))
    else:
        print("  with --trace: the timeline's %d bars are the %d events of step %s in the trace file" % (len(bars), len(inside),
                                                                                                     m.group(1)))

# ---- SIGINT: the report holds what was gathered
stopped = os.path.join(tmp, "stopped.html")
p = subprocess.Popen([train] + ARGS + ["--epochs", "2000", "--report", stopped], stdout=subprocess.PIPE,
                     stderr=subprocess.STDOUT)
seen = ""
while "epoch  1  loss" not in seen:
    line = p.stdout.readline().decode()
    if not line:
        break
    seen += line
p.send_signal(signal.SIGINT)
rest = p.communicate(timeout=120)[0].decode()
pages = check_page(stopped, "after SIGINT")
if p.returncode != 130:
    fail("cldp-train --report after SIGINT exited %d, not 130" % p.returncode, seen + rest)
elif pages:
    summary = [e for e in pages.elements if e["tag"] == "p" and "summary" in classes(e)]
    rows = table_rows(pages, "epochs")
    if not summary or "stopped by SIGINT" not in summary[0]["text"] or not rows:
        fail("the report after SIGINT should say so and hold the epochs run: %r, %d rows" %
             (summary[0]["text"] if summary else None, len(rows)))
    else:
        print("  SIGINT: %r, %d epoch row(s)" % (summary[0]["text"], len(rows)))

# ---- a failed step (an injected GEMM fault on device 0 at step 25): under stop the report says
# so and holds the first 25 steps; under drop device 0 computed those steps' shards alone, and
# device 1 (rank 0 after the drop) all the rest
failed = os.path.join(tmp, "failed.html")
env = dict(os.environ, CLDP_FAULT="0:25:gemm")
p = subprocess.run([train] + ARGS + ["--epochs", "2", "--quiet", "--report", failed], stdout=subprocess.PIPE,
                   stderr=subprocess.STDOUT, env=env, timeout=300)
pagef = check_page(failed, "after a failed step")
if p.returncode != 1:
    fail("cldp-train with a failing step exited %d, not 1" % p.returncode, p.stdout.decode())
elif pagef:
    summary = [e["text"] for e in pagef.elements if e["tag"] == "p" and "summary" in classes(e)]
    rows = table_rows(pagef, "epochs")
    if not summary or "stopped: step 26 failed" not in summary[0] or len(rows) != 1 or "stopped" not in rows[0][0]:
        fail("the report after a failed step should say so and hold the partial epoch: %r, rows %s" % (summary, rows))
    else:
        print("  a failed step: %r" % summary[0][:60])
dropped = os.path.join(tmp, "dropped.html")
p = subprocess.run([train] + ARGS + ["--epochs", "2", "--quiet", "--on-failure", "drop", "--report", dropped],
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, timeout=300)
paged = check_page(dropped, "after a drop")
if p.returncode != 0:
    fail("cldp-train --on-failure drop exited %d" % p.returncode, p.stdout.decode())
elif paged:
    devs = [int(r[1]) for r in table_rows(paged, "devices")]
    ntr = 2000
    if devs != [25 * 25, 2 * ntr - 25 * 25]:
        fail("after device 0 was dropped at step 25 the devices computed %s samples, not [625, %d]" % (devs, 2 * ntr - 625))
    else:
        print("  a dropped device: its %d samples before the drop, the other's %d after it, each on its own row" % tuple(devs))

# ---- a bad path: refused before training
for bad, says in ((os.path.join(tmp, "missing", "r.html"), "does not exist"), (tmp, "is a directory")):
    rc, out = run(["--epochs", "1", "--report", bad], timeout=60)
    if rc != 2 or says not in out or "--report" not in out or "epoch" in out:
        fail("--report %s should be refused before training (exit 2, '%s'), not exit %d" % (bad, says, rc), out)
    else:
        print("  --report %s: refused before training (%s)" % (os.path.relpath(bad, tmp), says))

# ---- a file that is not a report is not overwritten, unless --force; an earlier report is
precious = os.path.join(tmp, "notes.txt")
with open(precious, "w") as f:
    f.write("my notes\n")
rc, out = run(["--epochs", "1", "--report", precious], timeout=60)
if rc != 2 or "not a cldp-train report" not in out or "--force" not in out or open(precious).read() != "my notes\n":
    fail("--report on a file that is not a report should be refused before training, the file kept (exit %d)" % rc, out)
rc, out = run(["--epochs", "1", "--quiet", "--report", precious, "--force"])
if rc != 0 or "cldp-train report" not in open(precious).read():
    fail("--report with --force should overwrite the file (exit %d)" % rc, out)
rc, out = run(["--epochs", "1", "--quiet", "--report", one])
if rc != 0:
    fail("--report over an earlier report should write it (exit %d)" % rc, out)
else:
    print("  a file that is not a report: refused, kept; --force overwrites it; an earlier report is replaced")

# ---- the screenshot: every plot drawn where the page puts it
exe = chromium()
skip = None
if page and exe:
    main = find(page, "main")[0]["attrs"]["style"]
    height = px_style(main, "height")
    png = os.path.join(tmp, "run.png")
    try:
        c = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                            "--force-device-scale-factor=1", "--hide-scrollbars", "--screenshot=" + png,
                            "--window-size=1200,%d" % height, "file://" + report], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        if c.returncode != 0 or not os.path.exists(png):
            skip = "%s could not take a screenshot (exit %d): %s" % (exe, c.returncode, c.stdout.decode()[-500:])
    except subprocess.TimeoutExpired:
        skip = "%s took more than 60 s to take a screenshot" % exe
    if not skip:
        check_pixels(page, png, "screenshot")
elif not exe:
    skip = "no chromium on PATH (Debian: apt-get install chromium): the report is not rendered"

if failures:
    print("test_report: FAILED (%d); files in %s" % (failures, tmp))
    sys.exit(1)
shutil.rmtree(tmp, ignore_errors=True)
if skip:
    print("SKIP: test_report: " + skip)
    sys.exit(77)
print("test_report: passed")

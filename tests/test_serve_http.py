#!/usr/bin/env python3
"""test_serve_http — cldp-serve over loopback with real clients (curl and http.client): health,
metadata, inference equal to a double-precision reference computed here from the checkpoint's
parameters, flat and nested data, the refusals (malformed JSON, shape, datatype, input name,
unknown model or path, oversized body), a client that sends its body byte by byte, /metrics, and
SIGTERM draining in-flight requests to exit 0; then an MSE model (cldp-train --loss mse), refused
without --loss mse and served with it, its answers the raw outputs of the reference.

usage: test_serve_http.py CLDP_SERVE CLDP_TRAIN     (127.0.0.1 only; the port is any free one)"""
import http.client
import json
import math
import os
import random
import re
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

ATOL, RTOL = 1e-5, 1e-4  # float32 forward of 784-256-128-10 against double, on probabilities
failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print("FAIL", what, file=sys.stderr)
    return cond


def read_params(path):
    """The PRMS section of a cldp checkpoint (runtime/checkpoint.c's format)."""
    b = open(path, "rb").read()
    assert b[:8] == b"CLDPCKPT"
    nsec = struct.unpack_from("<I", b, 12)[0]
    pos = 24
    for _ in range(nsec):
        tag, ln = b[pos:pos + 4], struct.unpack_from("<Q", b, pos + 4)[0]
        if tag == b"PRMS":
            n = struct.unpack_from("<Q", b, pos + 12)[0]
            return struct.unpack_from("<%df" % n, b, pos + 20)
        pos += 12 + ln
    raise RuntimeError("no PRMS section")


def reference(p, x, softmax=True):
    """Softmax (or the raw outputs) of the MLP 784-256(relu)-128(relu)-10 in double; p in
    W[out][in], b[out] order."""
    at, h = 0, x
    for i, (n_in, n_out) in enumerate([(784, 256), (256, 128), (128, 10)]):
        w, b = p[at:at + n_in * n_out], p[at + n_in * n_out:at + n_in * n_out + n_out]
        at += n_in * n_out + n_out
        y = [b[o] + sum(w[o * n_in + k] * h[k] for k in range(n_in)) for o in range(n_out)]
        h = [max(v, 0.0) for v in y] if i < 2 else y
    if not softmax:
        return h
    m = max(h)
    e = [math.exp(v - m) for v in h]
    return [v / sum(e) for v in e]


def request(port, method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def infer_body(rows, nested=False, **over):
    inp = {"name": "input", "shape": [len(rows), 784], "datatype": "FP32",
           "data": rows if nested else [v for r in rows for v in r]}
    inp.update(over)
    return json.dumps({"id": "req-7", "inputs": [inp]})


def start(serve, args):
    """cldp-serve with args on any free port: (the process, its port), or (the process, None)."""
    proc = subprocess.Popen([serve, "--port", "0"] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if m:
            return proc, int(m.group(1))
    return proc, None


def close(got, ref):
    return all(abs(g - w) <= ATOL + RTOL * abs(w) for g, w in zip(got, ref))


def mse_model(serve, train, tmp):
    """A checkpoint of cldp-train --loss mse: refused by cldp-serve without --loss mse (a wrong
    model, naming the loss), served with it; the answers are the raw outputs, named "outputs"."""
    ckpt = os.path.join(tmp, "mse.ckpt")
    r = subprocess.run([train, "--embedded", "--epochs", "1", "--loss", "mse", "--checkpoint", ckpt], capture_output=True,
                       text=True)
    if not check(r.returncode == 0, "cldp-train --loss mse made the checkpoint: " + r.stderr):
        return
    wrong = subprocess.run([serve, "--port", "0", "--checkpoint", ckpt], capture_output=True, text=True, timeout=120)
    check(wrong.returncode != 0 and "wrong model" in wrong.stderr and "loss mse" in wrong.stderr,
          "an MSE checkpoint without --loss mse is refused: %s" % wrong.stderr[-400:])
    proc, port = start(serve, ["--checkpoint", ckpt, "--loss", "mse"])
    if not check(port, "cldp-serve --loss mse printed its port"):
        proc.kill()
        print(proc.stderr.read(), file=sys.stderr)
        return
    params = read_params(ckpt)
    rng = random.Random(int(time.time()) + 1)
    rows = [[rng.random() for _ in range(784)] for _ in range(2)]
    st, body = request(port, "POST", "/v2/models/cldp/infer", infer_body(rows), {"Content-Type": "application/json"})
    out = json.loads(body) if st == 200 else {}
    data = out["outputs"][0]["data"] if st == 200 and out["outputs"][0]["name"] == "outputs" else []
    refs = [reference(params, x, softmax=False) for x in rows]
    check(len(data) == 20 and all(close(data[i * 10:i * 10 + 10], refs[i]) for i in range(2)),
          "--loss mse: the raw outputs equal the reference: %s" % body[:300])
    st, md = request(port, "GET", "/v2/models/cldp")
    check(st == 200 and json.loads(md)["outputs"][0]["name"] == "outputs", "--loss mse: the metadata names the outputs")
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
    print("  --loss mse: refused without it, raw outputs with it (e.g. %s)" % ", ".join("%.4f" % v for v in data[:3]))


def main():
    serve, train = sys.argv[1], sys.argv[2]
    tmp = tempfile.mkdtemp(prefix="test_serve_http_")
    ckpt = os.path.join(tmp, "mlp.ckpt")
    r = subprocess.run([train, "--embedded", "--epochs", "1", "--checkpoint", ckpt], capture_output=True, text=True)
    if not check(r.returncode == 0, "cldp-train made the checkpoint: " + r.stderr):
        return 1
    params = read_params(ckpt)
    check(len(params) == 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10, "parameter count")

    proc, port = start(serve, ["--checkpoint", ckpt, "--max-batch", "16", "--max-body-bytes", "200000"])
    if not check(port, "cldp-serve printed its port"):
        proc.kill()
        print(proc.stderr.read(), file=sys.stderr)
        return 1

    # health and metadata
    check(request(port, "GET", "/v2/health/live") == (200, b'{"live":true}'), "live")
    check(request(port, "GET", "/v2/health/ready")[0] == 200, "ready")
    check(json.loads(request(port, "GET", "/v2")[1])["name"] == "cldp-serve", "server metadata")
    st, md = request(port, "GET", "/v2/models/cldp")
    md = json.loads(md)
    check(st == 200 and md["inputs"][0] == {"name": "input", "datatype": "FP32", "shape": [-1, 784]}
          and md["outputs"][0]["shape"] == [-1, 10], "model metadata")
    check(request(port, "GET", "/v2/models/cldp/ready")[0] == 200, "model ready")

    # inference equals the reference: flat and nested, through http.client and curl
    rng = random.Random(int(time.time()))
    rows = [[rng.random() for _ in range(784)] for _ in range(3)]
    refs = [reference(params, x) for x in rows]

    for nested in (False, True):
        st, body = request(port, "POST", "/v2/models/cldp/infer", infer_body(rows, nested), {"Content-Type": "application/json"})
        out = json.loads(body) if st == 200 else {}
        ok = st == 200 and out["id"] == "req-7" and out["model_name"] == "cldp" and out["outputs"][0]["shape"] == [3, 10]
        data = out["outputs"][0]["data"] if ok else []
        check(ok and all(close(data[i * 10:i * 10 + 10], refs[i]) for i in range(3)),
              "infer (%s data) equals the reference: %s" % ("nested" if nested else "flat", body[:200]))
    with open(os.path.join(tmp, "one.json"), "w") as f:
        f.write(infer_body(rows[:1]))
    c = subprocess.run(["curl", "-s", "-S", "-H", "Content-Type: application/json", "--data-binary", "@" + f.name,
                        "http://127.0.0.1:%d/v2/models/cldp/infer" % port], capture_output=True, text=True, timeout=60)
    got = json.loads(c.stdout)["outputs"][0]["data"] if c.returncode == 0 else []
    check(c.returncode == 0 and close(got, refs[0]), "curl infer equals the reference: " + c.stdout[:200] + c.stderr)

    # refusals: each a JSON {"error": ...} with its status
    cases = [
        ("malformed JSON", "POST", "/v2/models/cldp/infer", '{"inputs": [', 400),
        ("wrong shape", "POST", "/v2/models/cldp/infer", infer_body(rows[:1], shape=[1, 783]), 400),
        ("shape and data disagree", "POST", "/v2/models/cldp/infer", infer_body(rows[:1], shape=[2, 784]), 400),
        ("wrong datatype", "POST", "/v2/models/cldp/infer", infer_body(rows[:1], datatype="FP64"), 400),
        ("wrong input name", "POST", "/v2/models/cldp/infer", infer_body(rows[:1], name="pixels"), 400),
        ("a number beyond float", "POST", "/v2/models/cldp/infer", infer_body(rows[:1]).replace("[0.", "[1e39, 0.", 1), 400),
        ("NaN", "POST", "/v2/models/cldp/infer", infer_body(rows[:1]).replace("[0.", "[NaN, 0.", 1), 400),
        ("unknown model", "POST", "/v2/models/other/infer", infer_body(rows[:1]), 404),
        ("unknown model metadata", "GET", "/v2/models/other", None, 404),
        ("unknown path", "GET", "/v3/nothing", None, 404),
        ("oversized body", "POST", "/v2/models/cldp/infer", infer_body(rows * 20), 413),
    ]
    for what, method, path, body, want in cases:
        st, data = request(port, method, path, body)
        try:
            msg = json.loads(data)["error"]
        except (ValueError, KeyError):
            msg = None
        check(st == want and msg, "%s: %d (want %d) %s" % (what, st, want, data[:200]))
        print("  %-24s %d %s" % (what, st, msg))

    # a client that sends its body byte by byte
    body = infer_body(rows[1:2]).encode()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.putrequest("POST", "/v2/models/cldp/infer")
    c.putheader("Content-Type", "application/json")
    c.putheader("Content-Length", str(len(body)))
    c.endheaders()
    for i in range(len(body)):
        c.send(body[i:i + 1])
        if i % 1000 == 0:
            time.sleep(0.01)
    resp = c.getresponse()
    data = resp.read()
    c.close()
    got = json.loads(data)["outputs"][0]["data"] if resp.status == 200 else []
    check(resp.status == 200 and close(got, refs[1]), "byte-by-byte client: %d %s" % (resp.status, data[:200]))

    # metrics, labelled by device
    st, text = request(port, "GET", "/metrics")
    text = text.decode()
    check(st == 200 and 'cldp_requests_succeeded_total{device="all"} 4' in text and 'device="0:0"' in text
          and 'device="0:1"' in text and "cldp_batch_rows_bucket" in text and 'quantile="0.99"' in text, "metrics:\n" + text[:600])

    # SIGTERM while clients are sending: every answered request is 200 or 503, the server exits 0
    results = []
    lock = threading.Lock()

    def client():
        for _ in range(2000):  # bounded; ends at the first refused connection after the SIGTERM
            try:
                st, _ = request(port, "POST", "/v2/models/cldp/infer", infer_body(rows[:1]))
            except (OSError, http.client.HTTPException):
                st = "refused"
            with lock:
                results.append(st)
            if st == "refused":
                break

    threads = [threading.Thread(target=client) for _ in range(6)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join()
    try:
        rc = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = "hung"
    rest = proc.stdout.read()
    check(rc == 0 and "drained and stopped" in rest, "SIGTERM: exit %s, %s %s" % (rc, rest, proc.stderr.read()))
    check(all(s in (200, 503, "refused") for s in results) and results.count(200) > 0, "answers during the drain: %s" % results)
    print("  SIGTERM under load: %d answered 200, %d 503, %d refused after the listener closed; exit %s" %
          (results.count(200), results.count(503), results.count("refused"), rc))
    mse_model(serve, train, tmp)
    for f in os.listdir(tmp):
        os.remove(os.path.join(tmp, f))
    os.rmdir(tmp)
    if failures:
        print("test_serve_http: %d check(s) failed" % failures, file=sys.stderr)
        return 1
    print("test_serve_http: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

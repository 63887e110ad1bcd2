#!/usr/bin/env python3
"""test_torch_interop — weights between cldp and PyTorch for real, through the safetensors
package and torch.nn, for a CNN of every parameterised and parameterless kind and for the MLP
preset (dense layers with built-in activations):
- cldp-train trains three epochs on the embedded Fashion-MNIST subset on two devices and exports;
  PyTorch builds nn.Sequential from the "model" of cldp-train's --json line, loads the file with
  load_state_dict(strict=True), and gives on the same test set (standardised as cldp-train does)
  cldp-train's test loss (|a - b| <= 5e-4: cldp prints 4 decimals, the rest is float32
  rounding) and its count of correct answers (within 2 of 500: an arg-max near a tie may go
  either way); the exported tensors' bytes, in module order, have the CRC-32 cldp-train printed.
- PyTorch's own initialisation, saved by safetensors.torch.save_file (no cldp metadata), loads
  into cldp-train --init-from; a step size of 1e-30 leaves every parameter's bits in place (the
  CRC-32 checks it), so cldp's test loss and CRC must be PyTorch's.
Needs python3-torch (Debian) and the safetensors package (pip); without them a skip (exit 77),
said as SKIP. Usage: test_torch_interop.py CLDP-TRAIN MINI-DATA-DIR"""
import gzip, json, os, re, struct, subprocess, sys, tempfile, zlib

CNN = "conv:6:3:s2:p1,relu,maxpool:2,conv:8:3:p1,tanh,flatten,dense:24,sigmoid,dropout:0.25,dense:10"
failures = 0


def fail(msg, out=""):
    global failures
    failures += 1
    print("FAIL " + msg + ("\n--- output:\n" + out[-3000:] if out else ""), file=sys.stderr)


try:
    import torch
    import torch.nn as nn
    from safetensors.torch import load_file, save_file
except ImportError as e:
    print("SKIP test_torch_interop: %s (Debian: apt-get install python3-torch; then "
          "python3 -m pip install safetensors)" % e)
    sys.exit(77)


def idx(path):
    """An IDX file (gzip): its dimensions and bytes."""
    b = gzip.open(path, "rb").read()
    ndim = b[3]
    dims = struct.unpack(">" + "I" * ndim, b[4:4 + 4 * ndim])
    return dims, b[4 + 4 * ndim:]


def load_split(data, split):
    dims, px = idx(os.path.join(data, "fmnist-mini-%s-images.gz" % split))
    _, lab = idx(os.path.join(data, "fmnist-mini-%s-labels.gz" % split))
    x = torch.frombuffer(bytearray(px), dtype=torch.uint8).to(torch.float32) / 255.0
    return x.reshape(dims[0], -1), torch.tensor(list(lab), dtype=torch.int64)


def build(spec, c, h, w):
    """PyTorch's nn.Sequential for a cldp model spec (the expanded one of --json)."""
    mods = []
    for tok in spec.split(","):
        f = tok.split(":")
        opt = {p[0]: int(p[1:]) for p in f[3 if f[0] == "conv" else 2:]}  # sS, pP after the positional fields
        if f[0] == "conv":
            k, s, p = int(f[2]), opt.get("s", 1), opt.get("p", 0)
            mods.append(nn.Conv2d(c, int(f[1]), k, stride=s, padding=p))
            c, h, w = int(f[1]), (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        elif f[0] == "maxpool":
            k = int(f[1])
            s = opt.get("s", k)
            mods.append(nn.MaxPool2d(k, stride=s))
            h, w = (h - k) // s + 1, (w - k) // s + 1
        elif f[0] == "flatten":
            mods.append(nn.Flatten())
            c, h, w = c * h * w, 1, 1
        elif f[0] == "dense":
            mods.append(nn.Linear(c * h * w, int(f[1])))
            c, h, w = int(f[1]), 1, 1
        elif f[0] == "dropout":
            mods.append(nn.Dropout(float(f[1])))
        else:
            mods.append({"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}[f[0]]())
    return nn.Sequential(*mods)


def crc_of(state):
    """CRC-32 of the tensors' float32 bytes in module order (weight before bias), as cldp lays
    out its parameter vector."""
    crc = 0
    for name in sorted(state, key=lambda n: (int(n.split(".")[0]), n.split(".")[1] != "weight")):
        crc = zlib.crc32(state[name].detach().contiguous().numpy().tobytes(), crc)
    return crc


def train(args, timeout=600):
    env = dict(os.environ, POCL_DEVICES=os.environ.get("POCL_DEVICES", "basic basic"), CLDP_DEVICES="")
    p = subprocess.run([cldp_train, "--embedded", "--batch", "100", "--seed", "5", "--json"] + args,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, env=env)
    out = p.stdout.decode("utf-8", "replace")
    if p.returncode != 0:
        fail("cldp-train %s exited %d" % (" ".join(args), p.returncode), out)
        return None, out
    js = json.loads([l for l in out.splitlines() if l.startswith("{")][-1])
    m = re.findall(r"test loss ([0-9.]+)", out)
    js["test_loss"] = float(m[-1]) if m else float("nan")
    return js, out


def evaluate(net, x, y, shape):
    net.eval()
    with torch.no_grad():
        logits = net(x.reshape(-1, *shape))
        loss = nn.functional.cross_entropy(logits, y).item()
        correct = int((logits.argmax(1) == y).sum())
    return loss, correct


def check(what, spec_args, tmp, xte, yte):
    exported = os.path.join(tmp, what + ".safetensors")
    js, out = train(spec_args + ["--epochs", "3", "--export", exported])
    if js is None:
        return
    shape = tuple(js["input"])
    net = build(js["model"], *shape)
    state = load_file(exported)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        fail("%s: PyTorch's load_state_dict refuses cldp's file: %s" % (what, e), out)
        return
    n = yte.shape[0]
    loss, correct = evaluate(net, xte, yte, shape)
    want_correct = round(js["test_accuracy"] * n)
    if abs(loss - js["test_loss"]) > 5e-4 or abs(correct - want_correct) > 2:
        fail("%s: PyTorch on cldp's weights: test loss %.5f, %d/%d correct; cldp-train said %.4f, %d" %
             (what, loss, correct, n, js["test_loss"], want_correct), out)
    else:
        print("ok   %s: cldp -> PyTorch: test loss %.5f (cldp %.4f), %d/%d correct (cldp %d)" %
              (what, loss, js["test_loss"], correct, n, want_correct))
    if "0x%08x" % crc_of(state) != js["param_checksum"]:
        fail("%s: the exported tensors' CRC-32 0x%08x is not cldp-train's %s" % (what, crc_of(state), js["param_checksum"]))

    torch.manual_seed(11)
    fresh = build(js["model"], *shape)  # PyTorch's default initialisation
    theirs = os.path.join(tmp, what + "-torch.safetensors")
    save_file({k: v.contiguous() for k, v in fresh.state_dict().items()}, theirs)
    js2, out2 = train(spec_args + ["--epochs", "1", "--init-from", theirs, "--optimizer", "sgd", "--momentum", "0", "--lr", "1e-30"])
    if js2 is None:
        return
    loss2, correct2 = evaluate(fresh, xte, yte, shape)
    if js2["param_checksum"] != "0x%08x" % crc_of(fresh.state_dict()):
        fail("%s: PyTorch -> cldp: cldp's parameters' CRC-32 %s is not the file's 0x%08x" %
             (what, js2["param_checksum"], crc_of(fresh.state_dict())), out2)
    elif abs(loss2 - js2["test_loss"]) > 5e-4 or abs(correct2 - round(js2["test_accuracy"] * n)) > 2:
        fail("%s: PyTorch -> cldp: cldp's test loss %.4f, %d correct; PyTorch's %.5f, %d" %
             (what, js2["test_loss"], round(js2["test_accuracy"] * n), loss2, correct2), out2)
    else:
        print("ok   %s: PyTorch -> cldp: the same bits (CRC-32 %s), test loss %.4f (PyTorch %.5f)" %
              (what, js2["param_checksum"], js2["test_loss"], loss2))


def main():
    global cldp_train
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    cldp_train, data = sys.argv[1], sys.argv[2]
    torch.set_num_threads(1)
    xtr, _ = load_split(data, "train")
    xte, yte = load_split(data, "test")
    # cldp-train's standardisation: the training set's mean and deviation, in double precision
    d = xtr.to(torch.float64)
    mean, sd = d.mean().item(), (d.pow(2).mean() - d.mean().pow(2)).sqrt().item()
    xte = ((xte.to(torch.float64) - mean) / sd).to(torch.float32)
    with tempfile.TemporaryDirectory(prefix="cldp-torch-") as tmp:
        check("cnn", ["--model", CNN], tmp, xte, yte)
        check("mlp", ["--model", "mlp", "--hidden", "48,24"], tmp, xte, yte)
    if failures:
        print("test_torch_interop: %d failure(s)" % failures, file=sys.stderr)
        return 1
    print("test_torch_interop: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())

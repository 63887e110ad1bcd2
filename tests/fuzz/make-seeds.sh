#!/usr/bin/env bash
# make-seeds.sh — writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/): small
# valid inputs in each target's framing (see the comment at the top of each fuzz_*.c). The files
# are committed; rerun this after changing a framing. Needs bash, gzip and head only; given the fuzz
# build directory (make-seeds.sh build-fuzz), it also rewrites fuzz_checkpoint's seeds, which are
# real checkpoints the library writes (that takes an OpenCL device, e.g. PoCL).
# Usage: tests/fuzz/make-seeds.sh [FUZZ_BUILD_DIR]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
c=$here/corpus

# bytes of a 32-bit integer, little-endian (the fuzz_idx framing) or big-endian (IDX)
le32() { printf "\\$(printf %03o $(($1 & 255)))\\$(printf %03o $(($1 >> 8 & 255)))\\$(printf %03o $(($1 >> 16 & 255)))\\$(printf %03o $(($1 >> 24 & 255)))"; }
be32() { printf "\\$(printf %03o $(($1 >> 24 & 255)))\\$(printf %03o $(($1 >> 16 & 255)))\\$(printf %03o $(($1 >> 8 & 255)))\\$(printf %03o $(($1 & 255)))"; }

# ---- fuzz_idx: <le32 image length><image file><label file>
d=$c/fuzz_idx
rm -rf "$d" && mkdir -p "$d"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
idx_frame() { # image-file label-file out
    { le32 "$(stat -c %s "$1")"; cat "$1" "$2"; } >"$3"
}
# 3 images of 2x2 pixels, labels 0 2 1
{ printf '\0\0\010\003'; be32 3; be32 2; be32 2; printf '\000\377\200\001\020\040\100\177\376\375\002\003'; } >"$tmp/img3"
{ printf '\0\0\010\001'; be32 3; printf '\000\002\001'; } >"$tmp/lab3"
gzip -9 -n -c "$tmp/img3" >"$tmp/img3.gz"
gzip -9 -n -c "$tmp/lab3" >"$tmp/lab3.gz"
idx_frame "$tmp/img3" "$tmp/lab3" "$d/raw-3x2x2"
idx_frame "$tmp/img3.gz" "$tmp/lab3.gz" "$d/gz-3x2x2"
idx_frame "$tmp/img3.gz" "$tmp/lab3" "$d/gz-images-raw-labels"
# a gzip file of two members end to end (what cat a.gz b.gz makes)
head -c 10 "$tmp/img3" | gzip -9 -n -c >"$tmp/m1.gz"
tail -c +11 "$tmp/img3" | gzip -9 -n -c >"$tmp/m2.gz"
cat "$tmp/m1.gz" "$tmp/m2.gz" >"$tmp/img3-2members.gz"
idx_frame "$tmp/img3-2members.gz" "$tmp/lab3.gz" "$d/gz-two-members"
# one sample of one pixel
{ printf '\0\0\010\003'; be32 1; be32 1; be32 1; printf '\200'; } >"$tmp/img1"
{ printf '\0\0\010\001'; be32 1; printf '\011'; } >"$tmp/lab1"
idx_frame "$tmp/img1" "$tmp/lab1" "$d/raw-1x1x1"
# four real 28x28 Fashion-MNIST images from the embedded subset, header count patched to 4
n=4
gzip -dc "$root/runtime/data/fmnist-mini-test-images.gz" >"$tmp/all-img"
gzip -dc "$root/runtime/data/fmnist-mini-test-labels.gz" >"$tmp/all-lab"
{ printf '\0\0\010\003'; be32 $n; be32 28; be32 28; head -c $((16 + n * 784)) "$tmp/all-img" | tail -c +17; } >"$tmp/fm-img"
{ printf '\0\0\010\001'; be32 $n; head -c $((8 + n)) "$tmp/all-lab" | tail -c +9; } >"$tmp/fm-lab"
gzip -9 -n -c "$tmp/fm-img" >"$tmp/fm-img.gz"
gzip -9 -n -c "$tmp/fm-lab" >"$tmp/fm-lab.gz"
idx_frame "$tmp/fm-img.gz" "$tmp/fm-lab.gz" "$d/fmnist-4-gz"
idx_frame "$tmp/fm-img" "$tmp/fm-lab" "$d/fmnist-4-raw"

# ---- fuzz_device_spec: <list selector><capacity - 1><spec>
d=$c/fuzz_device_spec
rm -rf "$d" && mkdir -p "$d"
i=0
for spec in "" default all gpu cpu accelerator "0:0" "0:0,0:1" "2:0,1:0,0:1" "nvidia" "  GPU  " \
            "Portable Computing" "rtx 3090" "1:1" "0:0,0:0" "9:9"; do
    printf '\002\077%s' "$spec" >"$d/mixed-$i"
    i=$((i + 1))
done
printf '\000\077all' >"$d/none-all"
printf '\001\000default' >"$d/one-default"
printf '\003\077all' >"$d/sixty-four-all"
printf '\003\076all' >"$d/sixty-four-cap63"
printf '\003\077pthread' >"$d/sixty-four-name"
printf '\202\077' >"$d/mixed-null"

# ---- fuzz_split: <devices - 1><le16 batch><spec>
d=$c/fuzz_split
rm -rf "$d" && mkdir -p "$d"
printf '\001\200\000%s' "3,1" >"$d/two-3-1"
printf '\001\200\000%s' "0.75, 0.25" >"$d/two-fractions"
printf '\002\377\000%s' "1,0,2" >"$d/three-with-zero"
printf '\003\000\001%s' "auto" >"$d/auto"
printf '\003\000\001%s' "even" >"$d/even"
printf '\000\001\000%s' "" >"$d/empty"
printf '\007\145\000%s' "1,1,1,1,1,1,1,1e-3" >"$d/eight"
printf '\001\012\000%s' "3,-1" >"$d/negative"

# ---- fuzz_train_args: arguments separated by newlines
d=$c/fuzz_train_args
rm -rf "$d" && mkdir -p "$d"
printf -- '--devices\nall\n--epochs\n3\n--batch\n256' >"$d/devices-epochs-batch"
printf -- '--hidden\n256,128\n--activation\ntanh' >"$d/hidden-tanh"
printf -- '--hidden\nnone' >"$d/linear"
printf -- '--optimizer\nsgd\n--lr\n0.05\n--momentum\n0.9\n--weight-decay\n1e-4' >"$d/sgd"
printf -- '--json\n--quiet\n--seed\n42\n--data\n/usr/share/datasets/fashion-mnist' >"$d/json-seed-data"
printf -- '--help' >"$d/help"
printf -- '--checkpoint\n/tmp/run.ckpt\n--checkpoint-every\n100\n--resume\n/tmp/run.ckpt' >"$d/checkpoint"
printf -- '--devices\n0:0,0:1\n--split\n3:1' >"$d/split"

# ---- fuzz_tuning: tuning files as cldp-tune writes them
d=$c/fuzz_tuning
rm -rf "$d" && mkdir -p "$d"
cp "$root/runtime/data/tuning-builtin.txt" "$d/builtin"
cat >"$d/pocl-entry" <<'TXT'
# measured by cldp-tune
device = cpu-haswell-*
driver = 3.1+debian
note = basic device, 1 core
Xgemm/32 = GEMMK=0 KREG=1 KWG=32 KWI=2 MDIMA=16 MDIMC=16 MWG=64 NDIMB=16 NDIMC=16 NWG=64 SA=0 SB=0 STRM=0 STRN=0 VWM=4 VWN=4
XgemmDirect/32 = KWID=2 MDIMAD=8 MDIMCD=8 NDIMBD=8 NDIMCD=8 PADA=1 PADB=1 VWMD=1 VWND=1 WGD=32
GemmRoutine/32 = XGEMM_MIN_INDIRECT_SIZE=384
Copy/32 = COPY_DIMX=16 COPY_DIMY=8 COPY_VW=4 COPY_WPT=1
Pad/32 = PAD_DIMX=16 PAD_DIMY=8 PAD_WPTX=1 PAD_WPTY=1
Transpose/32 = TRA_DIM=8 TRA_PAD=1 TRA_SHUFFLE=0 TRA_WPT=4
Padtranspose/32 = PADTRA_PAD=1 PADTRA_TILE=16 PADTRA_WPT=2

device = NVIDIA GeForce RTX 3090
Xgemm/32 = GEMMK=1 KREG=4 KWG=1 KWI=1 MDIMA=8 MDIMC=8 MWG=32 NDIMB=8 NDIMC=8 NWG=64 SA=0 SB=0 STRM=0 STRN=0 VWM=4 VWN=4
TXT
# ---- fuzz_serve_request: <inputs-1><max_rows-1><body>; 3 inputs per row, at most 4 rows
d=$c/fuzz_serve_request
rm -rf "$d" && mkdir -p "$d"
serve_seed() { { printf '\002\003'; printf '%s' "$2"; } >"$d/$1"; }
serve_seed flat '{"id":"a","inputs":[{"name":"input","shape":[2,3],"datatype":"FP32","data":[1,2,3,4.5,-5e-3,6]}]}'
serve_seed nested '{"inputs":[{"name":"input","shape":[2,3],"datatype":"FP32","data":[[1,2,3],[4,5,6]]}]}'
serve_seed one-row '{"id":"x\u00e9","inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[0,0.25,1e30]}],"outputs":[]}'
serve_seed wrong-type '{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP64","data":[1,2,3]}]}'
serve_seed short-data '{"inputs":[{"name":"input","shape":[2,3],"datatype":"FP32","data":[1,2]}]}'
serve_seed truncated '{"inputs":[{"name":"input","shape":[2,'

# ---- fuzz_checkpoint: checkpoints of the target's model, written by the library itself
if [ $# -ge 1 ]; then
    d=$c/fuzz_checkpoint
    rm -rf "$d" && mkdir -p "$d"
    POCL_DEVICES=${POCL_DEVICES:-basic} CLDP_FUZZ_WRITE_SEEDS=$d "$1/tests/fuzz/fuzz_checkpoint"
fi

echo "seeds written under $c:"
for t in "$c"/*; do echo "  $(basename "$t"): $(ls "$t" | wc -l) files, $(cat "$t"/* | wc -c) bytes"; done

# ---- fuzz_model_spec: <C byte><H byte><W byte><spec>; the shape is 1 + byte mod 16 (7 -> 8)
d=$c/fuzz_model_spec
rm -rf "$d" && mkdir -p "$d"
printf '\000\033\033conv:32:5:p2,relu,maxpool:2,conv:64:5:p2,relu,maxpool:2,flatten,dense:1024,relu,dense:10' >"$d/cnn-12"
printf '\002\007\007conv:4:3:s2:p1,tanh,maxpool:3:s2,flatten,dense:5,sigmoid,dense:2' >"$d/stride-pad-8"
printf '\017\000\000dense:64,relu,dense:10' >"$d/mlp-flat"
printf '\000\017\017conv:8:3,dense:10' >"$d/shape-mismatch"
printf '\000\017\017conv:8:3,,maxpol:2' >"$d/bad-tokens"

# ---- fuzz_safetensors: whole files for conv:2:3:p1,relu,maxpool:2,flatten,dense:3 on 1x4x4 (the
# tensors 0.weight (2,1,3,3), 0.bias (2), 4.weight (3,8), 4.bias (3)); needs python3
d=$c/fuzz_safetensors
rm -rf "$d" && mkdir -p "$d"
python3 - "$d" <<'PY'
import json, struct, sys
d = sys.argv[1]
tensors = [("0.weight", [2, 1, 3, 3]), ("0.bias", [2]), ("4.weight", [3, 8]), ("4.bias", [3])]
def write(name, meta=True, dtype="F32", shift=0):
    header, data, at = {}, b"", 0
    if meta:
        header["__metadata__"] = {"cldp_model": "conv:2:3:p1,relu,maxpool:2,flatten,dense:3", "cldp_input": "1x4x4"}
    for i, (t, shape) in enumerate(tensors):
        n = 1
        for s in shape:
            n *= s
        header[t] = {"dtype": dtype, "shape": shape, "data_offsets": [at + shift, at + shift + 4 * n]}
        data += struct.pack("<%df" % n, *[(k % 7 - 3) / 4.0 for k in range(n)])
        at += 4 * n
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    open("%s/%s" % (d, name), "wb").write(struct.pack("<Q", len(h)) + h + data)
write("valid")
write("no-metadata", meta=False)
write("f16", dtype="F16")
write("shifted", shift=4)
PY

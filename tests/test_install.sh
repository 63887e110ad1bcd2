#!/usr/bin/env bash
# test_install.sh — cldp as a new user gets it: `cmake --install` of this build into a temporary
# prefix (checking the tree: libcldp.so.0 with its SONAME, libcldp.a, the headers, the CMake
# package, cldp.pc, the programs), then samples/embed.c built out of tree and run three ways:
# find_package(cldp) on the prefix, pkg-config (shared, and --static from Libs.private), and
# add_subdirectory of the source tree (whose tests and samples must stay off and which must not
# touch the parent's build type). Exit 77 (a skip) only when pkg-config is missing, after the rest.
# Usage: test_install.sh BUILD_DIR SOURCE_DIR C_COMPILER [SANITIZE]  (SANITIZE: the build's
# -fsanitize= list, which the application must then be built with too)
set -euo pipefail
build=$1 source=$2 cc=$3 sanitize=${4:-}
flags=""
[ -n "$sanitize" ] && flags="-fsanitize=$sanitize"
work=$(mktemp -d "${TMPDIR:-/tmp}/cldp-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
fail() { echo "FAIL $*" >&2; exit 1; }
run() { # what command...: runs it quietly, shows its output when it fails
    local what=$1; shift
    local rc=0
    "$@" >"$work/log" 2>&1 || rc=$?
    [ "$rc" -eq 0 ] || { cat "$work/log" >&2; fail "$what: $* exited $rc"; }
}

run "install" cmake --install "$build" --prefix "$prefix"
echo "installed into $prefix:"
(cd "$prefix" && find . -type f -o -type l | sort | sed 's/^/  /')
libdir=$(cd "$prefix" && dirname "$(find . -name libcldp.so.0 | head -1)")
libdir=${libdir#./}
[ -n "$libdir" ] && [ "$libdir" != . ] || fail "no libcldp.so.0 installed"
for f in "$libdir/libcldp.a" "$libdir/libcldp.so" "$libdir/pkgconfig/cldp.pc" "$libdir/cmake/cldp/cldpConfig.cmake" \
         "$libdir/cmake/cldp/cldpConfigVersion.cmake" include/cldp.h bin/cldp-train bin/cldp-devices; do
    [ -e "$prefix/$f" ] || fail "$f is not installed"
done
soname=$(readelf -d "$prefix/$libdir/libcldp.so.0" | sed -n 's/.*SONAME.*\[\(.*\)\].*/\1/p')
[ "$soname" = libcldp.so.0 ] || fail "the SONAME is '$soname', not libcldp.so.0"
real=$(readlink -f "$prefix/$libdir/libcldp.so.0")
case "$real" in *libcldp.so.0.*.*) ;; *) fail "libcldp.so.0 points to $real, not a versioned file" ;; esac
# an installed program finds the installed library
run "installed cldp-devices" "$prefix/bin/cldp-devices"

expect_run() { # how exe
    local how=$1 exe=$2 out
    out=$("$exe" 2>&1) || { echo "$out" >&2; fail "embed built with $how exited non-zero"; }
    echo "$how: $out"
    case "$out" in *"accuracy 0."*) ;; *) fail "embed built with $how printed no accuracy" ;; esac
}

# 1. find_package on the installed prefix
run "find_package configure" cmake -S "$source/tests/install" -B "$work/fp" -DCLDP_MODE=find_package \
    -DCMAKE_PREFIX_PATH="$prefix" -DEMBED_SOURCE="$source/samples/embed.c" -DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS="$flags"
run "find_package build" cmake --build "$work/fp"
readelf -d "$work/fp/embed" | grep -q 'NEEDED.*libcldp.so.0' || fail "find_package's embed does not use libcldp.so.0"
expect_run find_package "$work/fp/embed"

# 3. add_subdirectory of the source tree (built at -O0: only the link and the contract matter here)
run "add_subdirectory configure" cmake -S "$source/tests/install" -B "$work/sub" -DCLDP_MODE=subdirectory \
    -DCLDP_SOURCE="$source" -DEMBED_SOURCE="$source/samples/embed.c" -DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS="$flags" \
    -DCMAKE_BUILD_TYPE=Debug -DEMBED_EXPECT_BUILD_TYPE=Debug
run "add_subdirectory build" cmake --build "$work/sub" -j 2
expect_run add_subdirectory "$work/sub/embed"

# 2. pkg-config, shared and static
if ! command -v pkg-config >/dev/null 2>&1; then
    echo "test_install: SKIP the pkg-config build: pkg-config is not installed (Debian: pkg-config)"
    exit 77
fi
export PKG_CONFIG_PATH=$prefix/$libdir/pkgconfig
# shellcheck disable=SC2046
run "pkg-config build" "$cc" $flags -o "$work/embed-pc" "$source/samples/embed.c" $(pkg-config --cflags --libs cldp) \
    -Wl,-rpath,"$prefix/$libdir"
expect_run "pkg-config" "$work/embed-pc"
# shellcheck disable=SC2046
run "pkg-config --static build" "$cc" $flags -o "$work/embed-static" "$source/samples/embed.c" \
    $(pkg-config --cflags cldp) "$prefix/$libdir/libcldp.a" $(pkg-config --static --libs cldp | sed 's/-lcldp / /')
readelf -d "$work/embed-static" | grep -q 'libcldp' && fail "the static embed still needs libcldp.so"
expect_run "pkg-config --static" "$work/embed-static"
echo "test_install: installed, and embed.c built and ran through find_package, add_subdirectory and pkg-config"

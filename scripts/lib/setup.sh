# setup.sh — sourced by scripts/demo and scripts/test: installs the Debian packages cldp needs
# (as root through apt-get; otherwise prints the exact command), then configures and builds.
# Usage: cldp_setup <build-dir> <extra packages...>

cldp_missing_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    echo "${missing[@]}"
}

cldp_install() {
    if ! command -v dpkg-query >/dev/null 2>&1; then
        echo "cldp: not a Debian system: make sure a C compiler, cmake, the OpenCL ICD loader and headers," >&2
        echo "      CLBlast, an OpenCL driver (e.g. PoCL) and zlib are installed." >&2
        return 0
    fi
    local missing
    missing=$(cldp_missing_packages "$@")
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "cldp: missing Debian packages: $missing" >&2
        echo "cldp: install them with:" >&2
        echo "  sudo apt-get update && sudo apt-get install -y $missing" >&2
        exit 1
    fi
    echo "cldp: installing $missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing >/dev/null || {
        echo "cldp: apt-get install $missing failed" >&2
        exit 1
    }
}

# Optional: what the suite uses where present and skips (saying so) where not: pkg-config for
# test_install's pkg-config build, python3 for test_progress and test_help, doxygen for the
# `docs` target and test_docs. Never fatal: a failed install is a note.
cldp_install_optional() {
    command -v dpkg-query >/dev/null 2>&1 || return 0
    local missing
    missing=$(cldp_missing_packages "$@")
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "cldp: note: optional packages missing (their tests skip): sudo apt-get install -y $missing" >&2
        return 0
    fi
    echo "cldp: installing $missing (optional)"
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >/dev/null 2>&1; } ||
        echo "cldp: note: could not install the optional $missing; the tests that need them skip" >&2
}

CLDP_OPTIONAL_PACKAGES="pkg-config python3 doxygen"
CLDP_BASE_PACKAGES="gcc libc6-dev make cmake ocl-icd-opencl-dev opencl-headers libclblast-dev pocl-opencl-icd zlib1g-dev"
# cldp-serve (HTTP over libmicrohttpd, JSON through jansson, found with pkg-config) and its HTTP
# test's clients (curl, python3's http.client)
CLDP_SERVE_PACKAGES="libmicrohttpd-dev libjansson-dev pkg-config curl python3"
# the MPI trainer (cldp_mpi.h, -DCLDP_WITH_MPI=ON) and its tests under mpiexec
CLDP_MPI_PACKAGES="openmpi-bin libopenmpi-dev"
# test_report renders cldp-train --report's page in headless Chromium (optional: it skips,
# saying so, without it; the test reads the screenshot with python3 alone)
CLDP_REPORT_PACKAGES="chromium"

cldp_setup() {
    local build=$1
    shift
    # shellcheck disable=SC2086
    cldp_install $CLDP_BASE_PACKAGES $CLDP_SERVE_PACKAGES "$@"
    # shellcheck disable=SC2086
    cldp_install_optional $CLDP_OPTIONAL_PACKAGES
    local jobs
    jobs=$(nproc 2>/dev/null || echo 2)
    mkdir -p "$build"
    # configured once; again when CLDP_CMAKE_ARGS asks for settings (cmake keeps the rest)
    if [ ! -f "$build/CMakeCache.txt" ] || [ -n "${CLDP_CMAKE_ARGS:-}" ]; then
        # shellcheck disable=SC2086
        cmake -S "$CLDP_ROOT" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo ${CLDP_CMAKE_ARGS:-} >"$build/configure.log" 2>&1 || {
            cat "$build/configure.log" >&2
            rm -f "$build/CMakeCache.txt"
            echo "cldp: configuring failed (log above)" >&2
            exit 1
        }
        grep 'cldp:' "$build/configure.log" || true
    fi
    cmake --build "$build" -j "$jobs" >"$build/build.log" 2>&1 || {
        tail -40 "$build/build.log" >&2
        echo "cldp: build failed (full log: $build/build.log)" >&2
        exit 1
    }
}

#!/usr/bin/env bash
# KmemNative build entry point (bash twin of build.ps1).
#
#   ./build.sh build            restore + Release build of the solution, CLI published to artifacts/bin/kmem
#   ./build.sh test             build, run every test runner, print "N passed, N failed"
#   ./build.sh native           NativeAOT interop library + CMake/ctest under native/ (if native/CMakeLists.txt)
#   ./build.sh demo             build, then artifacts/bin/kmem demo
#   ./build.sh bench [--quick] [--native] [ARGS...]
#   ./build.sh kmem [ARGS...]   (re)build the CLI when stale, then run it
#   ./build.sh clean
#
# Needs only the .NET SDK on PATH (plus cmake/g++ for `native`, installed via apt when root).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"

SLN="KmemNative.sln"
CONFIG="Release"
CLI_PROJ="src/KmemNative.Cli"
TEST_PROJ="tests/KmemNative.Tests"
BENCH_PROJ="bench/KmemNative.Bench"
INTEROP_PROJ="src/KmemNative.Interop"
ARTIFACTS="$ROOT/artifacts"
BIN_DIR="$ARTIFACTS/bin"
RESULTS_DIR="$ARTIFACTS/test-results"
NATIVE_DIR="$ROOT/native"
NATIVE_BUILD="$NATIVE_DIR/build"
NATIVE_APT_PACKAGES=(cmake g++ libbenchmark-dev zlib1g-dev)
# The procps integration test runs the real free/slabtop/vmstat on the emulator's /proc files.
TEST_APT_PACKAGES=(procps)
TRACE_A="src/KmemNative.Cli/Traces/kmem-trace-a.txt.gz"

case "$(uname -s)" in
  MINGW* | MSYS* | CYGWIN*) EXE_SUFFIX=".exe" ;;
  *) EXE_SUFFIX="" ;;
esac
KMEM="$BIN_DIR/kmem$EXE_SUFFIX"

# ---------------------------------------------------------------- environment
export DOTNET_CLI_TELEMETRY_OPTOUT=1
export DOTNET_NOLOGO=1
export DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
export DOTNET_CLI_WORKLOAD_UPDATE_NOTIFY_DISABLE=1
export DOTNET_GENERATE_ASPNET_CERTIFICATE=false
export NUGET_XMLDOC_MODE="${NUGET_XMLDOC_MODE:-skip}"

# MSBuild flags: minimal verbosity (errors and warnings stay visible); dotnet never prompts
# unless given --interactive. RUN_FLAGS suit `dotnet run` too, which would hand -nologo to the program.
RUN_FLAGS=(-v minimal)
if [[ -n "${CI:-}" || ! -t 1 ]]; then
  export MSBUILDTERMINALLOGGER=off
  # No MSBuild worker nodes outliving this script: they would keep CI's output pipe open.
  export MSBUILDDISABLENODEREUSE=1
  RUN_FLAGS+=(--tl:off -clp:NoSummary)
fi
DOTNET_FLAGS=(-nologo "${RUN_FLAGS[@]}")

say() { printf '==> %s\n' "$*"; }
warn() { printf 'build.sh: %s\n' "$*" >&2; }
die() {
  warn "$*"
  exit 1
}

require_dotnet() {
  command -v dotnet >/dev/null 2>&1 || die ".NET SDK not found: put 'dotnet' on PATH (see global.json for the version)"
  # Let the framework-dependent apphost (artifacts/bin/kmem) find the runtime the SDK came with,
  # also when the SDK lives outside the default location (e.g. ~/.dotnet).
  if [[ -z "${DOTNET_ROOT:-}" ]]; then
    local dotnet_dir
    dotnet_dir="$(dirname "$(readlink -f "$(command -v dotnet)" 2>/dev/null || command -v dotnet)")"
    if [[ -d "$dotnet_dir/host/fxr" ]]; then export DOTNET_ROOT="$dotnet_dir"; fi
  fi
}

usage() {
  cat <<'EOF'
usage: ./build.sh VERB [ARGS...]

verbs:
  build                 restore + build the solution (Release), publish the CLI to artifacts/bin/kmem
  test                  build, run all test runners (dotnet test; ctest when native/CMakeLists.txt exists),
                        print "N passed, N failed"; fails if any test failed or none ran
  native                publish src/KmemNative.Interop (NativeAOT) and build/test native/ with CMake + ctest
  demo                  build, run `artifacts/bin/kmem demo` (tour + study scripts), replay the shipped trace A
                        and write pictures of memory to artifacts/pictures/ (PNG too when rsvg-convert exists)
  bench [--quick] [--native] [ARGS...]
                        run the BenchmarkDotNet suite (Release; arguments go to the benchmark program), then the
                        C ABI's Google Benchmark run against glibc (skipped with --filter); --native: only the latter
  kmem [ARGS...]        run the CLI, rebuilding it first if any src/**/*.cs or *.csproj is newer
  clean                 dotnet clean, remove artifacts/ and native/build/
  help                  this text

environment: CI=1 (or no terminal on stdout) selects plain, non-interactive build output.
EOF
}

# ---------------------------------------------------------------- build
# The CLI is published with NativeAOT when the toolchain allows (gcc/clang as the linker): `kmem replay` of a whole
# trace is then as fast from a cold process as in a warmed-up benchmark, with no JIT start-up. KMEM_AOT=0, or a
# failed AOT publish, falls back to the framework-dependent apphost.
publish_cli() {
  native_platform
  if [[ "${KMEM_AOT:-1}" != "0" ]] &&
     dotnet publish "$CLI_PROJ" -c "$CONFIG" -r "$NATIVE_RID" -p:PublishAot=true -o "$BIN_DIR" "${DOTNET_FLAGS[@]}"; then
    rm -f "$BIN_DIR/kmem.dll" "$BIN_DIR/kmem.runtimeconfig.json" "$BIN_DIR/kmem.deps.json"
  else
    [[ "${KMEM_AOT:-1}" == "0" ]] || warn "NativeAOT publish of the CLI failed; publishing the JIT build instead"
    dotnet publish "$CLI_PROJ" -c "$CONFIG" -o "$BIN_DIR" "${DOTNET_FLAGS[@]}"
  fi
  [[ -x "$KMEM" ]] || die "publish did not produce $KMEM"
  # An incremental publish keeps the apphost's old timestamp; `kmem` compares against it.
  touch "$KMEM"
}

do_build() {
  require_dotnet
  say "restore $SLN"
  dotnet restore "$SLN" "${DOTNET_FLAGS[@]}"
  say "build $SLN ($CONFIG)"
  dotnet build "$SLN" -c "$CONFIG" --no-restore "${DOTNET_FLAGS[@]}"
  say "publish $CLI_PROJ -> ${KMEM#"$ROOT/"}"
  publish_cli
}

# ---------------------------------------------------------------- test
TOTAL_PASSED=0
TOTAL_FAILED=0
TOTAL_SKIPPED=0

# xml_attr FILE ELEMENT ATTR: value of the first ELEMENT's numeric ATTR in FILE (0 when absent).
xml_attr() {
  local v
  # Attributes may span lines (ctest's JUnit file puts one per line): flatten first.
  v="$(tr '\r\n\t' '   ' <"$1" 2>/dev/null | grep -o "<$2[[:space:]][^>]*" | head -n 1 |
    grep -o "[[:space:]]$3=\"[0-9]*\"" | head -n 1 | grep -o '[0-9][0-9]*' || true)"
  printf '%s\n' "${v:-0}"
}

# Record one runner's result. A runner that exited non-zero without reporting a failed test
# (crash, build error, missing result file) counts as one failure so the summary never looks green.
add_counts() { # NAME PASSED FAILED SKIPPED EXIT_CODE
  local name="$1" passed="$2" failed="$3" skipped="$4" rc="$5"
  if [[ "$rc" -ne 0 && "$failed" -eq 0 ]]; then
    warn "$name: runner exited with code $rc without a failed test; counted as 1 failed"
    failed=1
  fi
  # Deliberately not in the "N passed, N failed" shape: only the final summary line has that.
  printf '%s results: passed=%d failed=%d skipped=%d\n' "$name" "$passed" "$failed" "$skipped"
  TOTAL_PASSED=$((TOTAL_PASSED + passed))
  TOTAL_FAILED=$((TOTAL_FAILED + failed))
  TOTAL_SKIPPED=$((TOTAL_SKIPPED + skipped))
}

run_dotnet_tests() {
  local trx="$RESULTS_DIR/dotnet-tests.trx" rc=0
  rm -f "$trx"
  say "dotnet test $TEST_PROJ"
  dotnet test "$TEST_PROJ" -c "$CONFIG" --no-build "${DOTNET_FLAGS[@]}" \
    --results-directory "$RESULTS_DIR" \
    --logger "trx;LogFileName=$(basename "$trx")" \
    --logger "console;verbosity=minimal" || rc=$?
  local passed=0 failed=0 skipped=0
  if [[ -f "$trx" ]]; then
    passed="$(xml_attr "$trx" Counters passed)"
    failed=$(($(xml_attr "$trx" Counters failed) + $(xml_attr "$trx" Counters error) +
      $(xml_attr "$trx" Counters timeout) + $(xml_attr "$trx" Counters aborted)))
    # Skipped tests are in the total but not executed.
    skipped=$(($(xml_attr "$trx" Counters total) - $(xml_attr "$trx" Counters executed)))
    ((skipped >= 0)) || skipped=0
  elif [[ "$rc" -eq 0 ]]; then
    warn "dotnet test wrote no $trx"
    rc=1
  fi
  add_counts "dotnet test" "$passed" "$failed" "$skipped" "$rc"
}

run_native_tests() {
  local junit="$RESULTS_DIR/ctest-junit.xml" log="$RESULTS_DIR/ctest.log" rc=0
  rm -f "$junit" "$log"
  "$ROOT/build.sh" native || rc=$?
  local passed=0 failed=0 skipped=0 total line
  if [[ -f "$junit" ]]; then
    total="$(xml_attr "$junit" testsuite tests)"
    failed=$(($(xml_attr "$junit" testsuite failures) + $(xml_attr "$junit" testsuite errors)))
    skipped=$(($(xml_attr "$junit" testsuite skipped) + $(xml_attr "$junit" testsuite disabled)))
    passed=$((total - failed - skipped))
    ((passed >= 0)) || passed=0
  elif [[ -f "$log" ]] && line="$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)"; then
    # ctest < 3.21 has no --output-junit: "80% tests passed, 1 tests failed out of 5"
    failed="$(sed -E 's/.* ([0-9]+) tests? failed out of.*/\1/' <<<"$line")"
    total="$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")"
    passed=$((total - failed))
  fi
  add_counts "ctest" "$passed" "$failed" "$skipped" "$rc"
}

do_test() {
  ensure_apt_packages test "${TEST_APT_PACKAGES[@]}" || warn "test: could not install ${TEST_APT_PACKAGES[*]}; the procps test will be skipped"
  do_build
  mkdir -p "$RESULTS_DIR"
  rm -f "$RESULTS_DIR/summary.txt"
  run_dotnet_tests
  if [[ -f "$NATIVE_DIR/CMakeLists.txt" ]]; then
    run_native_tests
  fi
  local summary="$TOTAL_PASSED passed, $TOTAL_FAILED failed"
  ((TOTAL_SKIPPED == 0)) || summary+=", $TOTAL_SKIPPED skipped"
  printf '%s\n' "$summary" >"$RESULTS_DIR/summary.txt"
  local rc=0
  if ((TOTAL_FAILED > 0)); then
    rc=1
  elif ((TOTAL_PASSED == 0)); then
    warn "no test ran: that is a failure"
    rc=1
  fi
  printf '%s\n' "$summary"
  exit "$rc"
}

# ---------------------------------------------------------------- native
# Host-specific names: RID for `dotnet publish -r`, and the shared library the interop project yields.
native_platform() {
  local os arch
  case "$(uname -m)" in
    x86_64 | amd64) arch="x64" ;;
    aarch64 | arm64) arch="arm64" ;;
    *) die "native: unsupported CPU $(uname -m)" ;;
  esac
  case "$(uname -s)" in
    Linux) os="linux" NATIVE_LIB="libkmem.so" ;;
    Darwin) os="osx" NATIVE_LIB="libkmem.dylib" ;;
    MINGW* | MSYS* | CYGWIN*) os="win" NATIVE_LIB="kmem.dll" ;;
    *) die "native: unsupported OS $(uname -s)" ;;
  esac
  NATIVE_RID="$os-$arch"
}

is_root() { [[ "$(id -u 2>/dev/null || echo 1)" == "0" ]]; }

ensure_native_packages() { ensure_apt_packages native "${NATIVE_APT_PACKAGES[@]}"; }

# ensure_apt_packages WHAT PACKAGE...: apt-get install the missing ones when root on Debian/Ubuntu; else say so.
ensure_apt_packages() {
  local what="$1"
  shift
  command -v dpkg-query >/dev/null 2>&1 || return 0 # not Debian/Ubuntu: the host provides them
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]} > 0)) || return 0
  if ! is_root; then
    warn "$what: missing packages ${missing[*]}; not root, so not installing them (sudo apt-get install -y ${missing[*]})"
    return 0
  fi
  say "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
}

# Publishes the interop library (NativeAOT, host RID) and builds native/ with CMake; sets NATIVE_LIB_DIR.
build_native() {
  native_platform
  ensure_native_packages
  NATIVE_LIB_DIR="$ARTIFACTS/native/$NATIVE_RID"
  if [[ -d "$INTEROP_PROJ" ]]; then
    require_dotnet
    say "publish $INTEROP_PROJ ($NATIVE_RID) -> ${NATIVE_LIB_DIR#"$ROOT/"}"
    dotnet publish "$INTEROP_PROJ" -c "$CONFIG" -r "$NATIVE_RID" -o "$NATIVE_LIB_DIR" "${DOTNET_FLAGS[@]}"
    if [[ ! -f "$NATIVE_LIB_DIR/$NATIVE_LIB" ]]; then
      warn "native: publish produced no $NATIVE_LIB in ${NATIVE_LIB_DIR#"$ROOT/"}"
    fi
  fi
  command -v cmake >/dev/null 2>&1 || die "native: cmake not found"
  NATIVE_JOBS="$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)"
  say "cmake configure native -> ${NATIVE_BUILD#"$ROOT/"}"
  cmake -S "$NATIVE_DIR" -B "$NATIVE_BUILD" --no-warn-unused-cli \
    -DCMAKE_BUILD_TYPE="$CONFIG" \
    -DKMEM_NATIVE_RID="$NATIVE_RID" \
    -DKMEM_NATIVE_LIB_DIR="$NATIVE_LIB_DIR" \
    -DKMEM_NATIVE_LIB="$NATIVE_LIB_DIR/$NATIVE_LIB"
  say "cmake build"
  cmake --build "$NATIVE_BUILD" --config "$CONFIG" --parallel "$NATIVE_JOBS"
}

do_native() {
  if [[ ! -f "$NATIVE_DIR/CMakeLists.txt" ]]; then
    echo "native: nothing to build (native/CMakeLists.txt missing)"
    exit 0
  fi
  build_native
  say "ctest"
  mkdir -p "$RESULTS_DIR"
  rm -f "$RESULTS_DIR/ctest-junit.xml"
  (cd "$NATIVE_BUILD" && ctest -C "$CONFIG" --output-on-failure --parallel "$NATIVE_JOBS" \
    --output-junit "$RESULTS_DIR/ctest-junit.xml") 2>&1 | tee "$RESULTS_DIR/ctest.log"
}

# The Google Benchmark run of the C ABI (native/bench): builds what it needs, prints its ratio table.
run_native_bench() { # QUICK(0|1) [ARGS...]
  local quick="$1"
  shift
  if [[ ! -f "$NATIVE_DIR/CMakeLists.txt" ]]; then
    warn "bench: no native/CMakeLists.txt, no native benchmark"
    return 0
  fi
  build_native
  local bench="$NATIVE_BUILD/kmem_bench$EXE_SUFFIX"
  [[ -x "$bench" ]] || die "bench: $bench was not built (is libbenchmark-dev installed?)"
  local min_time=1
  ((quick == 0)) || min_time=0.2
  say "native benchmark (C ABI vs glibc)"
  "$bench" --benchmark_min_time="$min_time" --benchmark_color=false "$@"
}

# ---------------------------------------------------------------- other verbs
# A section banner in the style of `kmem demo`'s own.
banner() {
  local rule="=============================================================================="
  printf '\n%s\n  %s\n%s\n' "$rule" "$*" "$rule"
}

# The demo: the tour and every study script (kmem demo), a replay of trace A with its summary, then pictures of
# memory in artifacts/pictures/: the replayed machine, and on each profile a process (heap, a written anonymous
# mapping, a forked child) drawn in its virtual address space and in physical memory.
do_demo() {
  do_build
  say "kmem demo: the tour, then every study script"
  "$KMEM" demo
  local pictures="$ARTIFACTS/pictures"
  rm -rf "$pictures"
  mkdir -p "$pictures"
  banner "Replay of a real Linux 6.18 trace: $TRACE_A (671,005 lines)"
  "$KMEM" replay "$TRACE_A" --svg "$pictures/replay-a-physical.svg" --frag-svg "$pictures/replay-a-fragmentation.svg"
  banner "Pictures of memory: a process in the virtual address space and in physical memory, both profiles"
  local arch mem=64M
  for arch in i386 x86_64; do
    echo "--- $arch, $mem (one cell per page in the physical map)"
    "$KMEM" run - --arch "$arch" --mem "$mem" <<EOF
\$p = spawn demo
sbrk \$p 64K
\$a = mmap \$p 0 1M PROT_READ|PROT_WRITE MAP_PRIVATE|MAP_ANONYMOUS
touch \$p \$a 1M write
\$c = fork \$p
touch \$c \$a 256K write
map --virt --pid \$p --svg $pictures/virtual-$arch.svg
map --svg $pictures/physical-$arch-$mem.svg
EOF
  done
  if command -v rsvg-convert >/dev/null 2>&1; then
    local f
    for f in "$pictures"/*.svg; do rsvg-convert "$f" -o "${f%.svg}.png"; done
  else
    echo "(rsvg-convert not found: SVG only; Debian: apt-get install librsvg2-bin for PNG copies)"
  fi
  echo "--- in ${pictures#"$ROOT/"}/:"
  (cd "$pictures" && ls -1)
}

do_bench() {
  # --native: only the C ABI benchmark; otherwise the BenchmarkDotNet suite, then the C ABI benchmark.
  local native_only=0 quick=0 a rest=()
  for a in "$@"; do
    case "$a" in
      --native) native_only=1 ;;
      --quick) quick=1 rest+=("$a") ;;
      *) rest+=("$a") ;;
    esac
  done
  if ((native_only)); then
    run_native_bench "$quick"
    return
  fi
  require_dotnet
  dotnet run -c "$CONFIG" --project "$BENCH_PROJ" "${RUN_FLAGS[@]}" -- "${rest[@]}"
  if [[ -f "$NATIVE_DIR/CMakeLists.txt" ]] && ! printf '%s\n' "${rest[@]}" | grep -qE '^(--filter|-f)$'; then
    run_native_bench "$quick"
  fi
}

cli_is_stale() {
  [[ -x "$KMEM" ]] || return 0
  local f
  for f in Directory.Build.props Directory.Packages.props global.json; do
    [[ ! -f "$f" || ! "$f" -nt "$KMEM" ]] || return 0
  done
  [[ -n "$(find src \( -name bin -o -name obj \) -prune -o -type f \( -name '*.cs' -o -name '*.csproj' \) \
    -newer "$KMEM" -print 2>/dev/null | head -n 1)" ]]
}

do_kmem() {
  require_dotnet
  if cli_is_stale; then
    # Build chatter goes to stderr so that stdout is the CLI's alone.
    publish_cli >&2
  fi
  exec "$KMEM" "$@"
}

do_clean() {
  require_dotnet
  if [[ -d "$ARTIFACTS/obj" ]]; then
    say "dotnet clean"
    dotnet clean "$SLN" -c "$CONFIG" "${DOTNET_FLAGS[@]}" || warn "dotnet clean failed; removing artifacts anyway"
  fi
  say "rm -rf artifacts native/build"
  rm -rf "$ARTIFACTS" "$NATIVE_BUILD"
}

# ---------------------------------------------------------------- main
VERB="${1:-help}"
(($# == 0)) || shift
case "$VERB" in
  build) do_build ;;
  test) do_test ;;
  native) do_native ;;
  demo) do_demo ;;
  bench) do_bench "$@" ;;
  kmem) do_kmem "$@" ;;
  clean) do_clean ;;
  help | -h | --help) usage ;;
  *)
    echo "build.sh: unknown verb '$VERB'" >&2
    echo "usage: ./build.sh {build|test|native|demo|bench|kmem|clean|help} (./build.sh help for details)" >&2
    exit 2
    ;;
esac

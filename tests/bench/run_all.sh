#!/bin/sh
# run_all.sh - builds a release build into build-bench and runs every benchmark, printing
# their JSON lines (one or more per bench). Benchmarks assert nothing; this exits non-zero
# only when the build or a bench script itself fails.
#
# usage: sh tests/bench/run_all.sh [BUILD_DIR]      (default: build-bench at the top)
# Set TMPDIR to put the spools somewhere roomy (bench_queue's database is ~550 MB).
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-"$top/build-bench"}
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build" -j2 >/dev/null
bench="$top/tests/bench"
status=0
run() {
	echo "# $*" >&2
	"$@" || { echo "# FAILED ($?): $*" >&2; status=1; }
}
run python3 "$bench/bench_ingest.py" "$build"
BENCH_SHAPE=onefile run python3 "$bench/bench_ops.py" "$build"
BENCH_SHAPE=files BENCH_OUTPUT=file run python3 "$bench/bench_ops.py" "$build"
BENCH_SHAPE=files BENCH_OUTPUT=store run python3 "$bench/bench_ops.py" "$build"
run python3 "$bench/bench_makespan.py" "$build"
run python3 "$bench/bench_queue.py" "$build"
# the PostgreSQL store (a throwaway cluster: needs Debian's postgresql)
run python3 "$bench/bench_pg.py" "$build"
exit $status

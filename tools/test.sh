#!/bin/sh
# test.sh - the whole suite, as CI runs it (tools/bootstrap.sh test installs first):
#   1. dev build, warnings as errors; every unit, end-to-end, contract and replay test
#   2. the generated operation table matches data/operations.json; cppcheck is clean;
#      the files of tools/format-files.txt are as .clang-format says
#   3. the ASan+UBSan build runs the same suite
#   4. a 60-second libFuzzer run of the job parser, when clang is present
#   5. as root, the Debian package: built, linted, installed, run, purged (package_check.sh)
set -eu
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
export CTEST_OUTPUT_ON_FAILURE=1

step() { printf '\n=== %s\n' "$*"; }

if command -v npm >/dev/null 2>&1; then
	step "contract tools (npm ci in tests/contract)"
	(cd tests/contract && npm ci --no-audit --no-fund --loglevel=error) ||
		echo "npm ci failed: the contract test will report itself skipped"
	step "the official TypeScript SDK (npm ci in tests/sdk)"
	(cd tests/sdk && npm ci --no-audit --no-fund --loglevel=error) ||
		echo "npm ci failed: the SDK test (e2e.sdk) will fail"
fi

step "dev build (-Werror)"
cmake -S . -B build -DSEGSPOOL_DEV=ON >/dev/null
cmake --build build -j"$jobs"
python3 tools/gen_catalog.py --check
python3 tools/gen_store_ops.py --check

if command -v cppcheck >/dev/null 2>&1; then
	step "cppcheck"
	cppcheck -q --std=c11 -D_GNU_SOURCE -Iinclude --library=tools/cppcheck-cjson.cfg \
		--enable=warning,portability --inline-suppr --error-exitcode=1 src/
else
	echo "skipped: cppcheck (not installed)"
fi

if command -v clang-format >/dev/null 2>&1; then
	step "clang-format (tools/format-files.txt)"
	formatted=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' tools/format-files.txt)
	# shellcheck disable=SC2086 # one path a word
	clang-format --dry-run --Werror $formatted
	unlisted=$(find src include tests/unit tests/e2e tests/fuzz -name '*.[ch]' | sort |
		grep -vxF "$formatted" | grep -v -e '^src/job/catalog_table\.c$' -e '^src/emu/emu_seed_table\.c$' \
		-e '^src/store/store_ops\.[ch]$' -e '^src/store/[a-z]*_ops\.c$' -e '^src/store/[a-z]*_names\.h$' || true)
	[ -z "$unlisted" ] || printf 'not yet in tools/format-files.txt:\n%s\n' "$unlisted"
else
	echo "skipped: clang-format (not installed)"
fi

step "test suite (dev build)"
(cd build && ctest -j"$jobs" --timeout 900)

step "ASan+UBSan build"
cmake -S . -B build-asan -DSEGSPOOL_DEV=ON -DSEGSPOOL_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j"$jobs"
step "test suite (ASan+UBSan build)"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest -j"$jobs" --timeout 900 -LE slow)

if command -v clang >/dev/null 2>&1; then
	step "fuzz: 60 s of libFuzzer on the job parser"
	cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DSEGSPOOL_FUZZ=ON >/dev/null
	cmake --build build-fuzz -j"$jobs" --target fuzz_job
	mkdir -p build-fuzz/corpus
	build-fuzz/tests/fuzz/fuzz_job -max_total_time=60 -max_len=65536 -print_final_stats=1 \
		build-fuzz/corpus tests/fuzz/corpus 2>&1 | tail -n 15
else
	echo "skipped: fuzz run (clang is not installed)"
fi
if [ "$(id -u)" -eq 0 ]; then sh tools/package_check.sh; else echo "skipped: the Debian package check (not root)"; fi
step "all green"

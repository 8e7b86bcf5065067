#!/bin/sh
# bootstrap.sh - one command from a fresh Debian 12 machine to a running demo or a green
# test suite: installs the Debian packages that are missing, builds, then runs.
#
#   sh tools/bootstrap.sh demo   install, build (release), run the demo
#   sh tools/bootstrap.sh test   install, build (warnings as errors), run the whole suite,
#                                then the ASan+UBSan build's suite and a short fuzz run
set -eu
cd "$(dirname "$0")/.."
mode=${1:-demo}
jobs=$(nproc 2>/dev/null || echo 2)

# packages: build, libraries, and what the tests drive (python3 for end-to-end tests,
# openssl for a self-signed TLS peer, node for the Prism contract proxy, clang for fuzzing,
# cppcheck and clang-format for the checks of tools/test.sh, mandoc for e2e.manpages' lint,
# strace for e2e.spool_writers' fsync order; dpkg-dev (dpkg-shlibdeps), lintian, systemd
# (systemd-analyze), init-system-helpers and adduser for tools/package_check.sh;
# libpq-dev for the PostgreSQL store, postgresql for its tests' throwaway clusters)
pkgs="build-essential cmake libcurl4-openssl-dev libsqlite3-dev libcjson-dev libev-dev
      libmicrohttpd-dev libpq-dev python3 ca-certificates"
if [ "$mode" = test ]; then
	pkgs="$pkgs openssl clang libclang-rt-14-dev cppcheck clang-format mandoc strace"
	pkgs="$pkgs dpkg-dev lintian systemd init-system-helpers adduser"
	# the PostgreSQL store's tests start a throwaway cluster (initdb, pg_ctl)
	pkgs="$pkgs postgresql"
	command -v node >/dev/null 2>&1 || pkgs="$pkgs nodejs npm"
fi
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "bootstrap: installing:$missing"
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
	# shellcheck disable=SC2086
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi

case "$mode" in
demo)
	cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
	cmake --build build-release -j"$jobs"
	exec python3 tools/demo.py build-release
	;;
test)
	exec sh tools/test.sh
	;;
*)
	echo "usage: sh tools/bootstrap.sh demo|test" >&2
	exit 2
	;;
esac

#!/bin/sh
# package_check.sh - the Debian package, as an operator gets it (needs root, on a Debian 12
# machine that does not otherwise have segspool installed; tools/test.sh runs it as root):
#   1. a release build of its own (build-pkg/, Debian's hardening flags) and cpack -G DEB
#   2. lintian: fails on any error or warning but those accepted below
#   3. dpkg -i: the segspool user, the spool and its modes, the conffile
#   4. systemd-analyze verify on the installed units, and security --offline=true: the
#      figure is printed; above 2.0 fails
#   5. the installed /usr/bin/segspool as the segspool user against /usr/bin/segspool-emu
#      on loopback, the token from a systemd-style credential: jobs submitted into
#      /var/spool/segspool (by segspool and by root) succeed, the token is nowhere there
#   6. dpkg --purge; then the same install and purge with systemd's tools hidden from the
#      maintainer scripts (a machine without systemd), which fall back on adduser and
#      install -d
# Everything it made (the user, /var/spool/segspool, /etc/segspool) is removed at the end.
set -eu
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
max_exposure=2.0
spool=/var/spool/segspool

step() { printf '\n=== package: %s\n' "$*"; }
fail() {
	echo "package_check: $*" >&2
	exit 1
}

[ "$(id -u)" -eq 0 ] || fail "needs root (it installs the package)"
for t in cpack dpkg-shlibdeps lintian systemd-analyze runuser python3; do
	command -v "$t" >/dev/null 2>&1 || fail "$t is missing (sh tools/bootstrap.sh test installs it)"
done
if dpkg-query -W -f='${Status}' segspool 2>/dev/null | grep -q "ok installed"; then
	fail "segspool is installed on this machine; this check installs and purges it"
fi
[ ! -e "$spool" ] || fail "$spool exists; this check makes and removes it"
getent passwd segspool >/dev/null && fail "a segspool user exists; this check makes and removes it"
[ ! -e /etc/segspool ] || fail "/etc/segspool exists; this check makes and removes it"

work=$(mktemp -d /tmp/segspool-pkg.XXXXXX)
emu_pid=""
cleanup() {
	[ -z "$emu_pid" ] || kill "$emu_pid" 2>/dev/null || true
	if dpkg-query -W -f='${Status}' segspool 2>/dev/null | grep -q "installed"; then
		dpkg --purge segspool >/dev/null 2>&1 || true
	fi
	rm -rf "$work" "$spool" /etc/segspool
	if getent passwd segspool >/dev/null; then userdel segspool 2>/dev/null || true; fi
	if getent group segspool >/dev/null; then groupdel segspool 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

step "release build (build-pkg/, dpkg-buildflags hardening=+all) and cpack -G DEB"
eval "$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --export=sh)"
# CMake reads CFLAGS and LDFLAGS but not CPPFLAGS (_FORTIFY_SOURCE)
CFLAGS="$CFLAGS $CPPFLAGS" cmake -S . -B build-pkg -DCMAKE_BUILD_TYPE=Release \
	-DBUILD_TESTING=OFF -DCMAKE_INSTALL_PREFIX=/usr >/dev/null
cmake --build build-pkg -j"$jobs"
rm -f build-pkg/segspool_*.deb
(cd build-pkg && cpack -G DEB)
version=$(sed -n 's/^project(segspool VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
deb="build-pkg/segspool_${version}_$(dpkg --print-architecture).deb"
[ -f "$deb" ] || fail "cpack made no $deb"
dpkg-deb -I "$deb" | sed -n 's/^ \(Depends\|Version\|Architecture\):/  \1:/p'
dpkg-deb -f "$deb" Depends | grep -q "libc6" || fail "no shared-library dependencies (shlibdeps)"

step "lintian"
# accepted tags, and why:
#   no-manual-page: only while man/ lacks the pages (they come with their own change)
#   binary-has-unneeded-section (info): the .comment of GCC's ident; dh_strip would
#     remove it, CPack's strip does not, and it costs a few bytes
#   package-supports-alternative-init-but-no-init.d-script (info): the service is
#     systemd's (Type=notify, credentials, sandboxing); no sysvinit script on purpose
accepted="binary-has-unneeded-section,package-supports-alternative-init-but-no-init.d-script"
[ -f man/segspool.1 ] && [ -f man/segspool-emu.1 ] || accepted="$accepted,no-manual-page"
# (lintian says it prefers not to run as root: it only reads the package)
rc=0
out=$(lintian --fail-on error,warning --display-info --suppress-tags "$accepted" "$deb" 2>&1) ||
	rc=$?
printf '%s\n' "$out" | grep -v -e '^running with root privileges' -e '^$' || true
[ "$rc" -eq 0 ] || fail "lintian: errors or warnings above (exit $rc)"
echo "lintian: clean (accepted: $accepted)"

# check_installed - what dpkg -i must have made, whichever tools the scripts used
check_installed() {
	getent passwd segspool >/dev/null || fail "no segspool user"
	shell=$(getent passwd segspool | cut -d: -f7)
	case "$shell" in */nologin | */false) ;; *) fail "segspool's shell is $shell" ;; esac
	for entry in ".:750" "tmp:700" "incoming:700" "rejected:700" "archive:700" \
		"control:700" "out:755"; do
		d=$spool/${entry%%:*}
		got=$(stat -c '%a %U:%G' "$d" 2>/dev/null) || fail "$d is missing"
		[ "$got" = "${entry##*:} segspool:segspool" ] ||
			fail "$d is $got, want ${entry##*:} segspool:segspool"
	done
	dpkg-query -W -f='${Conffiles}\n' segspool | grep -q "/etc/segspool/segspool.json" ||
		fail "/etc/segspool/segspool.json is not a conffile"
}

step "dpkg -i (twice: an install, then an upgrade over it)"
dpkg -i "$deb"
check_installed
wants=/etc/systemd/system/multi-user.target.wants/segspool.service
[ -L "$wants" ] || fail "segspool.service is not enabled ($wants)"
dpkg -i "$deb"
check_installed
echo "user, spool, conffile and the enabled unit: as packaged"

step "systemd-analyze verify and security (installed units)"
units=/usr/lib/systemd/system
# Documentation=man:... is checked when the pages are installed and man can show them
man=no
if command -v man >/dev/null 2>&1 && [ -e /usr/share/man/man1/segspool.1.gz ]; then
	man=yes
fi
out=$(systemd-analyze verify --man="$man" "$units/segspool.service" \
	"$units/segspool-submit@.timer" 2>&1) || fail "systemd-analyze verify: $out"
# a template is verified through an instance of it
mkdir -p "$work/units"
cp "$units/segspool-submit@.service" "$work/units/segspool-submit@nightly.service"
out2=$(systemd-analyze verify --man="$man" "$work/units/segspool-submit@nightly.service" 2>&1) ||
	fail "systemd-analyze verify (segspool-submit@nightly.service): $out2"
[ -z "$out$out2" ] || fail "systemd-analyze verify is not clean: $out $out2"
echo "systemd-analyze verify: clean (man pages checked: $man)"
for u in segspool.service segspool-submit@.service; do
	figure=$(systemd-analyze security --offline=true "$units/$u" 2>&1 |
		sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
	[ -n "$figure" ] || fail "systemd-analyze security gave no figure for $u"
	echo "systemd-analyze security --offline=true $u: $figure (at most $max_exposure)"
	awk -v f="$figure" -v m="$max_exposure" 'BEGIN { exit !(f <= m) }' ||
		fail "$u is rated $figure, above $max_exposure"
done

step "the installed daemon as the segspool user, against the installed emulator"
token="pkg-check-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
# the operator's token: root's alone; the segspool user cannot read it
install -m 0600 /dev/null /etc/segspool/token
printf '%s\n' "$token" >/etc/segspool/token
if runuser -u segspool -- cat /etc/segspool/token >/dev/null 2>&1; then
	fail "the segspool user can read /etc/segspool/token"
fi
# what LoadCredential= does: a copy in a directory of the service's, 0400
cred="$work/credentials"
chmod 0711 "$work" # traversable, so that the credential directory is what guards the token
install -d -o segspool -g segspool -m 0700 "$cred"
install -o segspool -g segspool -m 0400 /etc/segspool/token "$cred/segment-token"
port_file="$work/emu.port"
/usr/bin/segspool-emu --port 0 --port-file "$port_file" --token "$token" \
	>"$work/emu.log" 2>&1 &
emu_pid=$!
i=0
while [ ! -s "$port_file" ]; do
	i=$((i + 1))
	[ "$i" -lt 200 ] || fail "the emulator did not start: $(cat "$work/emu.log")"
	sleep 0.05
done
api="http://127.0.0.1:$(cat "$port_file")"
seg() {
	(cd / && runuser -u segspool -- env -u SEGMENT_TOKEN CREDENTIALS_DIRECTORY="$cred" \
		/usr/bin/segspool --config /etc/segspool/segspool.json --api-base "$api" "$@")
}
printf '%s\n' '{"op": "createSource", "params": {"slug": "pkg-check", "enabled": true, "metadataId": "IqDTy1TpoU"}, "output": "pkg-check.json"}' |
	seg submit - || fail "segspool submit as the segspool user failed"
# and as root, as an operator types it: the file is the spool owner's all the same
printf '%s\n' '{"op": "listWarehouses", "paginate": "all"}' |
	(cd / && /usr/bin/segspool --config /etc/segspool/segspool.json submit -) ||
	fail "segspool submit as root failed"
[ "$(find "$spool/incoming" -type f -name '*.json' | wc -l)" -eq 2 ] ||
	fail "not 2 files in $spool/incoming after the submits"
seg run --until-idle >"$work/daemon.log" 2>&1 || fail "segspool run: $(cat "$work/daemon.log")"
state=$(seg list --json | python3 -c 'import json, sys; print(",".join(json.loads(l)["state"] for l in sys.stdin))')
[ "$state" = succeeded,succeeded ] || fail "the jobs are $state, not succeeded: $(cat "$work/daemon.log")"
[ -s "$spool/out/pkg-check.json" ] || fail "no output $spool/out/pkg-check.json"
grep -q '"slug"' "$spool/out/pkg-check.json" || fail "the output holds no source"
owner=$(stat -c %U "$spool/out/pkg-check.json")
[ "$owner" = segspool ] || fail "the output belongs to $owner"
if grep -rqF "$token" "$spool" "$work/daemon.log"; then
	fail "the token is in $(grep -rlF "$token" "$spool" "$work/daemon.log" | head -n 3)"
fi
echo "two jobs submitted into $spool (by segspool, by root) ran as segspool against the emulator: $state"
kill "$emu_pid"
wait "$emu_pid" 2>/dev/null || true
emu_pid=""

step "dpkg --purge"
dpkg --purge segspool
[ ! -e /usr/bin/segspool ] || fail "/usr/bin/segspool is still there after the purge"
[ ! -e /etc/segspool/segspool.json ] || fail "the conffile is still there after the purge"
[ -e "$spool/segspool.db" ] || fail "the purge removed a spool that holds a store"
[ ! -e "$wants" ] || fail "the purge left $wants"
echo "purged: binaries and conffile gone; the spool with its store and the token kept"
rm -rf "$spool" /etc/segspool
userdel segspool
getent group segspool >/dev/null && groupdel segspool

step "dpkg -i and --purge without systemd's tools (adduser, install -d)"
mkdir "$work/bin"
for dir in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
	[ -d "$dir" ] || continue
	for f in "$dir"/*; do
		n=${f##*/}
		case "$n" in systemd-sysusers | systemd-tmpfiles) continue ;; esac
		[ -e "$work/bin/$n" ] || ln -s "$f" "$work/bin/$n"
	done
done
PATH="$work/bin" dpkg -i "$deb"
check_installed
PATH="$work/bin" dpkg --purge segspool
[ ! -e "$spool" ] || fail "the purge left an empty spool behind"
echo "without systemd's tools: user, spool and conffile as packaged; an empty spool purged"
step "all green"

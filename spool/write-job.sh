#!/bin/sh
# write-job.sh - drops job files into a segspool spool as the daemon expects (see
# README.md beside this file): each file is written whole in SPOOL/tmp/, flushed to disk,
# renamed into SPOOL/incoming/ under a name no other writer uses, and the rename itself
# flushed. It does not validate the jobs: the daemon does, and rejects a bad file whole
# into SPOOL/rejected/ with its reasons (`segspool validate FILE` checks one beforehand).
#
#   write-job.sh [-n NAME] SPOOL [FILE|-]...
#
# FILE's base name (or NAME, which also names standard input; default stdin.json) must
# end in .json (one job, or an array of jobs) or .jsonl (JSON Lines, one job a line).
# Prints the path each file was given in incoming/. Exit 0 when every file went in, 1
# when one could not, 2 for a usage error.
set -eu

prog=write-job.sh
usage() {
	echo "usage: $prog [-n NAME] SPOOL [FILE|-]..." >&2
	exit 2
}
fail() {
	echo "$prog: $*" >&2
	exit 1
}

name=""
while getopts n: opt; do
	case $opt in
	n) name=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || usage
spool=$1
shift
[ $# -ge 1 ] || set -- -

[ -d "$spool/incoming" ] ||
	fail "$spool/incoming is not a directory (is $spool a spool? segspool run creates it)"
# the daemon makes tmp/ at its start; a writer that comes first makes it
[ -d "$spool/tmp" ] || mkdir -m 0700 "$spool/tmp" 2>/dev/null || [ -d "$spool/tmp" ] ||
	fail "cannot create $spool/tmp"
# a rename is atomic only within one filesystem; mv would copy across two, and the daemon
# could read the copy half-written. df -P: the filesystem and its mount point (the figures
# between them change as others write)
mount_of() {
	df -P "$1" | sed 1d | awk '{ $2 = $3 = $4 = $5 = ""; print }'
}
[ "$(mount_of "$spool/tmp")" = "$(mount_of "$spool/incoming")" ] ||
	fail "$spool/tmp and $spool/incoming are not on one filesystem"

# flush - a file's (or directory's) data to disk: coreutils' sync FILE calls fsync; a
# sync without it flushes everything, which is slower but as good
flush() {
	sync -- "$1" 2>/dev/null || sync
}

# the job files are nobody else's business, but the daemon's group may need to read them
umask 027
tmp=""
trap 'if [ -n "$tmp" ]; then rm -f -- "$tmp"; fi' EXIT
trap 'exit 1' HUP INT TERM
rand=$(od -An -N4 -tx4 /dev/urandom 2>/dev/null | tr -d ' \n') || rand=""
n=0
for file in "$@"; do
	n=$((n + 1))
	if [ -n "$name" ]; then
		base=$name
	elif [ "$file" = - ]; then
		base=stdin.json
	else
		base=${file##*/}
	fi
	case $base in
	*.jsonl) ext=.jsonl ;;
	*.json) ext=.json ;;
	*) echo "$prog: $base: the name must end in .json or .jsonl (the daemon ignores others)" >&2
	   exit 2 ;;
	esac
	[ "$file" = - ] || [ -f "$file" ] || fail "$file: no such file"
	# time stamp, pid, counter, random: unique among writers, in order within one; the
	# base name kept to what a file name can safely hold, and short enough for the
	# daemon (it ignores names longer than 200 bytes)
	stem=$(printf '%s' "${base%"$ext"}" | tr -c 'A-Za-z0-9._-' '_')
	final=$(printf '%s-%07d-%06d%s-%.120s%s' "$(date -u +%Y%m%dT%H%M%SZ)" "$$" "$n" \
		"${rand:+-$rand}" "$stem" "$ext")
	# created anew (noclobber), not an existing file written over; only then is it ours
	# to remove on failure
	(set -C && : >"$spool/tmp/$final") || fail "cannot create $spool/tmp/$final"
	tmp=$spool/tmp/$final
	if [ "$file" = - ]; then
		cat >"$tmp" || fail "cannot write $tmp"
	else
		cat -- "$file" >"$tmp" || fail "cannot write $tmp"
	fi
	flush "$tmp"
	# rename would replace a file of that name not yet ingested; the name is unique, but
	# make sure
	if [ -e "$spool/incoming/$final" ] || [ -L "$spool/incoming/$final" ]; then
		fail "$spool/incoming/$final exists already"
	fi
	mv -- "$tmp" "$spool/incoming/$final" || fail "cannot rename $tmp into $spool/incoming/"
	tmp=""
	flush "$spool/incoming"
	printf '%s\n' "$spool/incoming/$final"
done

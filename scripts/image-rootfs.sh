#!/bin/sh
# Lays out DEST as the whole file system of a one-program image: the program in /usr/local/bin,
# any EXTRA paths (files, symlinks, directories) at their own paths, the shared libraries all of
# them link (ldd's closure, real files where the loader looks), the dynamic loader, and the few
# files a process expects (/etc/passwd and /etc/group naming its user, /tmp). Nothing else: no
# shell, no package manager. Run inside the Dockerfile's build stage.
# usage: image-rootfs.sh DEST USER:UID PROGRAM [EXTRA...]
set -eu
usage="usage: image-rootfs.sh DEST USER:UID PROGRAM [EXTRA...]"
dest=${1:?$usage}
user=${2:?$usage}
prog=${3:?$usage}
shift 3
name=${user%%:*}
uid=${user#*:}

mkdir -p "$dest/usr/local/bin" "$dest/etc" "$dest/tmp" "$dest/run"
chmod 1777 "$dest/tmp"
cp "$prog" "$dest/usr/local/bin/"
elves="$prog"
for x in "$@"; do
	mkdir -p "$dest$(dirname "$x")"
	cp -a "$x" "$dest$x"
	for f in $(find "$x" -type f); do
		head -c 4 "$f" | grep -q 'ELF' && elves="$elves $f"
	done
done
for f in $elves; do
	# "not found" fails the build: the image would not start.
	if ldd "$f" | grep -q 'not found'; then
		ldd "$f" >&2
		echo "image-rootfs: $f: a library is missing" >&2
		exit 1
	fi
	for lib in $(ldd "$f" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
		[ -e "$dest$lib" ] && continue
		mkdir -p "$dest$(dirname "$lib")"
		cp -L "$lib" "$dest$lib"
	done
done
# glibc finds the loader at the path the program names (PT_INTERP).
interp=$(readelf -l "$prog" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
if [ -n "$interp" ] && [ ! -e "$dest$interp" ]; then
	mkdir -p "$dest$(dirname "$interp")"
	cp -L "$interp" "$dest$interp"
fi
printf 'root:x:0:0:root:/:/sbin/nologin\n%s:x:%s:%s:%s:/:/sbin/nologin\n' "$name" "$uid" "$uid" "$name" >"$dest/etc/passwd"
printf 'root:x:0:\n%s:x:%s:\n' "$name" "$uid" >"$dest/etc/group"
# Name lookups (the operator's API server may be a host name) use files, then DNS, as glibc's default.
printf 'hosts: files dns\n' >"$dest/etc/nsswitch.conf"

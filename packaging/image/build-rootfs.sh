#!/bin/sh
# build-rootfs.sh BINARY SCRIPTS OUT.tar
#
# A minimal root filesystem for registrar, as a tar for `docker import`:
# the binary as /usr/bin/registrar, the scripts where it looks for them
# (/usr/share/registrar/scripts, beside ../share of its directory), every
# shared library ldd names and the dynamic loader, the CA certificates for
# https registries, and the few files of /etc a program expects.  No shell,
# no package manager: nothing but what registrar runs with.
set -eu

if [ $# -ne 3 ]; then
    echo "usage: $0 BINARY SCRIPTS_DIR OUT.tar" >&2
    exit 2
fi
binary=$1 scripts=$2 out=$3
[ -x "$binary" ] || { echo "$0: $binary is not an executable" >&2; exit 1; }
[ -f "$scripts/naming/default.lua" ] || { echo "$0: $scripts holds no naming/default.lua" >&2; exit 1; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

install -D -m 0755 "$binary" "$root/usr/bin/registrar"
mkdir -p "$root/usr/share/registrar"
cp -R "$scripts" "$root/usr/share/registrar/scripts"

# "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" and the loader,
# "/lib64/ld-linux-x86-64.so.2 (0x...)": each copied to the path the
# binary asks for, links followed.  Name lookups need no NSS modules:
# glibc 2.34 and later has files and dns built in.
libs=$(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
[ -n "$libs" ] || { echo "$0: ldd names no libraries for $binary" >&2; exit 1; }
for lib in $libs; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done

if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
fi

mkdir -p "$root/etc" "$root/proc" "$root/sys" "$root/dev" "$root/var/lib/registrar" "$root/root"
mkdir -m 1777 "$root/tmp"
printf 'root:x:0:0:root:/root:/usr/bin/registrar\nnobody:x:65534:65534:nobody:/nonexistent:/usr/bin/registrar\n' \
    > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$root/etc/nsswitch.conf"
# Docker mounts its own over these three
: > "$root/etc/hostname"
: > "$root/etc/hosts"
: > "$root/etc/resolv.conf"

tar --numeric-owner --owner=0 --group=0 -C "$root" -cf "$out" .

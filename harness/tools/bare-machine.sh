#!/usr/bin/env bash
# Times "bare machine to the first full report": a fresh Debian bookworm
# root (debootstrap) with nothing in it but Rust (this host's rustup
# toolchain, copied), a C linker and git, then `cargo harness matrix` from
# a clean clone of this checkout, everything else provisioned by the
# harness itself (apt, QEMU, virtme-ng, virtiofsd, kernels, the arm64 root).
#
#   harness/tools/bare-machine.sh [DIR]     (root; DIR defaults to /var/tmp/unlink-bare)
#
# Each output line is prefixed with the seconds since `cargo harness matrix`
# started; the last line is its exit code and total time. The Debian mirror
# is the one this host's apt sources use; the host's CA bundle and pip/npm
# settings are copied in (a machine's network setup, not the tool's).
# DIR is removed first and unmounted at the end.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "bare-machine.sh: run as root" >&2; exit 2; }
repo=$(cd "$(dirname "$0")/../.." && pwd)
dir=${1:-/var/tmp/unlink-bare}
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list)
command -v debootstrap >/dev/null || apt-get install -y -q debootstrap >/dev/null

cleanup() {
    for m in dev sys proc; do umount -R "$dir/$m" 2>/dev/null || true; done
    umount "$dir" 2>/dev/null || true
}
trap cleanup EXIT
cleanup
rm -rf "$dir"
echo "debootstrap bookworm into $dir"
debootstrap --variant=minbase bookworm "$dir" "$mirror" >/dev/null
# A machine's root is a mount point (virtiofsd's sandbox needs one).
mount --bind "$dir" "$dir"
for m in proc sys dev; do mount --rbind "/$m" "$dir/$m"; done
cp /etc/resolv.conf "$dir/etc/resolv.conf"
cp /etc/apt/sources.list.d/*.sources "$dir/etc/apt/sources.list.d/" 2>/dev/null &&
    : >"$dir/etc/apt/sources.list"
for f in /etc/pip.conf /root/.npmrc; do [ -f "$f" ] && cp "$f" "$dir$f"; done
echo "Rust (this host's toolchain), gcc, git"
mkdir -p "$dir/root/.cargo"
cp -a "${RUSTUP_HOME:-$HOME/.rustup}" "$dir/root/.rustup"
cp -a "${CARGO_HOME:-$HOME/.cargo}/bin" "$dir/root/.cargo/bin"
chroot "$dir" env DEBIAN_FRONTEND=noninteractive apt-get -q update >/dev/null
chroot "$dir" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends gcc libc6-dev git ca-certificates >/dev/null
# After ca-certificates, which writes its own bundle.
cp /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/ca-certificates.crt"
git clone -q "$repo" "$dir/root/unlink"
echo "cargo harness matrix (from $(git -C "$repo" log --oneline -1 | cut -c1-60))"
ca=/etc/ssl/certs/ca-certificates.crt
chroot "$dir" /usr/bin/env -i HOME=/root TERM=dumb \
    PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    SSL_CERT_FILE=$ca CURL_CA_BUNDLE=$ca REQUESTS_CA_BUNDLE=$ca PIP_CERT=$ca \
    NODE_EXTRA_CA_CERTS=$ca GIT_SSL_CAINFO=$ca \
    bash -c 'cd /root/unlink && start=$(date +%s%N)
        set +e
        cargo harness matrix 2>&1 | while IFS= read -r l; do
            printf "%6d %s\n" $(( ($(date +%s%N) - start) / 1000000000 )) "$l"; done
        rc=${PIPESTATUS[0]}
        echo "exit $rc after $(( ($(date +%s%N) - start) / 1000000000 )) s"'

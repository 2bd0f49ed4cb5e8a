#!/bin/sh
# Builds the lab's offline apt repository into a lab host's overlay upper
# layer: a few tiny stand-in .deb packages (built with dpkg-deb), a flat
# Packages/Release index under UPPER_ROOT/srv/aicp-lab-apt, and an apt
# configuration (UPPER_ROOT/etc/apt/apt.conf.d/99aicp-lab) that makes the
# host's real apt-get read only that repository, so `apt-get update` and
# `apt-get install` work without leaving the machine.
#
# Usage: sh tests/lab/apt-repo.sh UPPER_ROOT
#   UPPER_ROOT/<dir> is the overlay upper layer of /<dir> on the host.
#
# Packages (all Architecture: all, each installs /usr/share/doc/NAME/README
# and /usr/share/aicp-lab/NAME.version holding its version):
#   nfs-common 1:2.6.2-4+lab      what NFS mount playbooks install
#   aicp-lab-tool 1.0, 2.0       two versions, for pinning and state=latest;
#                                ships the conffile /etc/aicp-lab-tool.conf
#   aicp-lab-app 1.0             depends on aicp-lab-dep (autoremove tests)
#   aicp-lab-dep 1.0
#   kubeadm, kubelet, kubectl 1.29.3-1.1, 1.30.2-1.1
#                                version markers only: the lab's kubeadm and
#                                kubelet programs are tests/lab/bin's
#
# The host's package lists are seeded with this repository's index (as
# `apt-get update` would leave them) but dated 1970, so that packages
# install at once and the first update_cache, even with a cache_valid_time,
# still refreshes them.
set -eu

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 UPPER_ROOT" >&2
    exit 64
fi
UPPER=$1
REPO_PATH=/srv/aicp-lab-apt          # where the host sees it
REPO=$UPPER$REPO_PATH
LC_ALL=C; export LC_ALL
# Fixed timestamps make the packages and indexes byte-identical on every
# run (the script runs again each time a lab host comes up).
SOURCE_DATE_EPOCH=1700000000; export SOURCE_DATE_EPOCH
command -v dpkg-deb >/dev/null || { echo "$0: dpkg-deb not found" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/aicp-apt-repo.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM
mkdir -p "$REPO/pool" "$REPO/sources.list.d" "$UPPER/etc/apt/apt.conf.d"

# build NAME VERSION [DEPENDS] [CONFFILE]
build() {
    name=$1 version=$2 depends=${3:-} conffile=${4:-}
    root=$WORK/$name-$version
    mkdir -p "$root/DEBIAN" "$root/usr/share/doc/$name" "$root/usr/share/aicp-lab"
    printf '%s %s: a stand-in package of the aicp lab repository.\n' "$name" "$version" \
        >"$root/usr/share/doc/$name/README"
    printf '%s\n' "$version" >"$root/usr/share/aicp-lab/$name.version"
    {
        echo "Package: $name"
        echo "Version: $version"
        echo "Architecture: all"
        echo "Maintainer: aicp lab <lab@aicp.invalid>"
        echo "Installed-Size: 8"
        [ -n "$depends" ] && echo "Depends: $depends"
        echo "Section: misc"
        echo "Priority: optional"
        echo "Description: aicp lab stand-in for $name"
        echo " Installs a README and a version marker; nothing else."
    } >"$root/DEBIAN/control"
    if [ -n "$conffile" ]; then
        mkdir -p "$root$(dirname "$conffile")"
        printf '# %s %s configuration\nsetting = default\n' "$name" "$version" >"$root$conffile"
        echo "$conffile" >"$root/DEBIAN/conffiles"
    fi
    # dpkg-deb wants 0755 control directories whatever the umask is.
    find "$root" -type d -exec chmod 0755 {} +
    find "$root" -type f -exec chmod 0644 {} +
    find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
    deb=$REPO/pool/${name}_$(printf '%s' "$version" | sed 's/^[0-9]*://')_all.deb
    dpkg-deb --root-owner-group -Zgzip -b "$root" "$deb" >/dev/null
}

build nfs-common 1:2.6.2-4+lab
build aicp-lab-tool 1.0 "" /etc/aicp-lab-tool.conf
build aicp-lab-tool 2.0 "" /etc/aicp-lab-tool.conf
build aicp-lab-dep 1.0
build aicp-lab-app 1.0 "aicp-lab-dep (>= 1.0)"
for v in 1.29.3-1.1 1.30.2-1.1; do
    for p in kubeadm kubelet kubectl; do
        build $p $v
    done
done

# NVIDIA driver stand-ins (nvidia_driver module tests): real branch names
# and upstream versions; the postinst records the version where the lab's
# nvidia-smi stand-in reads the "loaded" driver.
build_nvidia_driver() {
    name=nvidia-driver-$1 version=$2-0ubuntu1
    root=$WORK/$name-$version
    mkdir -p "$root/DEBIAN" "$root/usr/share/doc/$name"
    printf '%s %s: aicp lab stand-in for the NVIDIA driver.\n' "$name" "$version" \
        >"$root/usr/share/doc/$name/README"
    printf 'Package: %s\nVersion: %s\nArchitecture: all\nMaintainer: aicp lab <lab@aicp.invalid>\nInstalled-Size: 8\nSection: misc\nPriority: optional\nDescription: aicp lab stand-in for %s\n Records the driver version for the nvidia-smi stand-in.\n' \
        "$name" "$version" "$name" >"$root/DEBIAN/control"
    printf '#!/bin/sh\nset -e\nmkdir -p /etc/aicp-lab\necho %s >/etc/aicp-lab/nvidia-driver-version\n' "$2" \
        >"$root/DEBIAN/postinst"
    find "$root" -type d -exec chmod 0755 {} +
    find "$root" -type f -exec chmod 0644 {} +
    chmod 0755 "$root/DEBIAN/postinst"
    find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
    dpkg-deb --root-owner-group -Zgzip -b "$root" "$REPO/pool/${name}_${version}_all.deb" >/dev/null
}
build_nvidia_driver 535 535.104.05
build_nvidia_driver 550 550.54.15

# The Packages index, written field by field (no dpkg-dev needed):
# the control fields of each .deb plus where it is and its checksums.
: >"$REPO/Packages"
for deb in "$REPO"/pool/*.deb; do
    dpkg-deb -f "$deb" Package Version Architecture Maintainer Installed-Size Depends \
        Section Priority Description >>"$REPO/Packages"
    rel=pool/$(basename "$deb")
    echo "Filename: ./$rel" >>"$REPO/Packages"
    echo "Size: $(wc -c <"$deb" | tr -d ' ')" >>"$REPO/Packages"
    echo "SHA256: $(sha256sum "$deb" | cut -d' ' -f1)" >>"$REPO/Packages"
    echo >>"$REPO/Packages"
done
gzip -9nc "$REPO/Packages" >"$REPO/Packages.gz"
{
    echo "Origin: aicp-lab"
    echo "Label: aicp-lab"
    echo "Suite: lab"
    echo "Codename: lab"
    echo "Date: $(date -u -R -d "@$SOURCE_DATE_EPOCH")"
    echo "Architectures: all $(dpkg --print-architecture 2>/dev/null || echo amd64)"
    echo "Description: aicp lab packages (offline)"
    echo "SHA256:"
    for f in Packages Packages.gz; do
        echo " $(sha256sum "$REPO/$f" | cut -d' ' -f1) $(wc -c <"$REPO/$f" | tr -d ' ') $f"
    done
} >"$REPO/Release"

echo "deb [trusted=yes] file:$REPO_PATH ./" >"$REPO/sources.list"
cat >"$UPPER/etc/apt/apt.conf.d/99aicp-lab" <<CONF
// aicp lab: this host's apt reads only the local repository in $REPO_PATH.
Dir::Etc::SourceList "$REPO_PATH/sources.list";
Dir::Etc::SourceParts "$REPO_PATH/sources.list.d";
Acquire::Languages "none";
Acquire::Retries "0";
APT::Get::List-Cleanup "true";
CONF
chmod -R a+rX "$REPO"

# The host sees the machine's package lists: recent, but of other
# repositories. Seed this repository's lists under the names apt gives them
# (its URI with '/' as '_'), and date them 1970 so that the first
# update_cache (even with a cache_valid_time) refreshes them.
LISTS=$UPPER/var/lib/apt/lists
mkdir -p "$LISTS/partial" "$UPPER/var/lib/apt/periodic"
prefix=$(printf '%s' "$REPO_PATH" | tr '/' '_')_._
cp "$REPO/Packages" "$LISTS/${prefix}Packages"
cp "$REPO/Release" "$LISTS/${prefix}Release"
: >"$UPPER/var/lib/apt/periodic/update-success-stamp"
touch -d @0 "$LISTS/${prefix}Packages" "$LISTS/${prefix}Release" \
    "$UPPER/var/lib/apt/periodic/update-success-stamp" "$LISTS"

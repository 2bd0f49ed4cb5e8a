#!/bin/sh
# Prepares one aicp lab host before its sshd starts: called by `aicp lab up`
# (and `aicp lab start`) as `sh host-init.sh NAME ROOT`, where ROOT is the
# host's upper layer (ROOT/etc, ROOT/usr, ... are overlaid on /etc, /usr, ...
# in the host's mount namespace). Files dropped here exist only on that host.
# Keep it idempotent: it runs again when the lab comes up over kept trees.
set -eu
name=$1
root=$2
here=$(cd "$(dirname "$0")" && pwd)

mkdir -p "$root/etc" "$root/usr/local/sbin"
printf '%s\n' "$name" > "$root/etc/hostname"

# Stand-ins for programs that cannot work unprivileged-in-a-namespace
# (systemctl, modprobe, ...): they shadow the real ones through PATH.
if [ -d "$here/bin" ]; then
    for f in "$here"/bin/*; do
        [ -f "$f" ] || continue
        cp "$f" "$root/usr/local/sbin/"
        chmod 0755 "$root/usr/local/sbin/$(basename "$f")"
    done
fi

# containerd's configuration as the node image ships it (`containerd config
# default`, reduced): what node preparation edits. Kept when present.
if [ ! -f "$root/etc/containerd/config.toml" ]; then
    mkdir -p "$root/etc/containerd"
    cat > "$root/etc/containerd/config.toml" <<'EOF'
version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.6"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes]
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
          runtime_type = "io.containerd.runc.v2"
          [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
            SystemdCgroup = false
EOF
fi

# Packages come from a small local repository built into the host's tree,
# so apt-get works offline and never leaves the machine.
sh "$here/apt-repo.sh" "$root"

# The host's own name resolves (sudo and others look it up).
if [ ! -f "$root/etc/hosts" ] || ! grep -q "[[:space:]]$name\$" "$root/etc/hosts"; then
    { cat /etc/hosts 2>/dev/null; printf '127.0.1.1\t%s\n' "$name"; } > "$root/etc/hosts.aicp-new"
    mv "$root/etc/hosts.aicp-new" "$root/etc/hosts"
fi

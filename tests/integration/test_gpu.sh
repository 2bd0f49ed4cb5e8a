#!/bin/sh
# GPU nodes on a lab host: gpu_facts (from the nvidia-smi stand-in's
# per-host description, usable in templates and `when:`; no driver is
# 0 GPUs and a null version, not a failure), nvidia_driver (install through
# the lab apt repository's nvidia-driver-* packages, reboot_required, again
# unchanged, another branch changed) and nvidia_container_toolkit (create,
# again, default change, absent, absent again, with config.toml asserted).
# Every changing step first runs with --check, which must predict what the
# real run then does, and a --check after it must see nothing to change.
. "$top_srcdir/tests/integration/lib.sh"
need_lab
lab_up 1
H=node01

cat >"$WORK/gpu.py" <<'PY'
import json, os, subprocess, sys
aicp, inv, work = sys.argv[1:4]
steps = json.load(sys.stdin)
fails = 0

def run(tasks, check):
    pb = os.path.join(work, "gpu.yml")
    rep = os.path.join(work, "gpu.json")
    with open(pb, "w") as f:
        json.dump([{"hosts": "node01", "gather_facts": False, "tasks": tasks}], f)
    if os.path.exists(rep):
        os.unlink(rep)
    cmd = [aicp, "run", pb, "-i", inv, "--json", rep, "-v"] + (["--check"] if check else [])
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    st = {}
    if os.path.exists(rep):
        for play in json.load(open(rep)).get("plays", []):
            for t in play.get("tasks", []):
                st[t["name"]] = t["hosts"].get("node01", {}).get("status")
    return p.returncode, st, p.stdout

for label, expected, tasks in steps:
    for i, t in enumerate(tasks):
        t.setdefault("name", "%s %d" % (label, i))
    crc, cst, cout = run(tasks, True)
    rc, st, out = run(tasks, False)
    vrc, _, vout = run(tasks, True)
    probs = []
    if rc != expected:
        probs.append("exit %d, expected %d" % (rc, expected))
    if crc != rc or cst != st:
        probs.append("--check predicted %d %s, the run did %d %s" % (crc, cst, rc, st))
    if vrc != 0:
        probs.append("a --check after the run still sees changes (exit %d)" % vrc)
    if probs:
        fails += 1
        print("FAIL %s: %s" % (label, "; ".join(probs)))
        print("---- check run\n" + cout + "---- real run\n" + out + "---- verify\n" + vout)
    else:
        print("ok   %s (exit %d)" % (label, rc))
    with open(os.path.join(work, label.replace(" ", "_") + ".out"), "w") as f:
        f.write(out)
sys.exit(1 if fails else 0)
PY
steps() { python3 "$WORK/gpu.py" "$AICP" "$LAB/inventory.ini" "$WORK" || fail "$1"; }

# --- gpu_facts: no description, no driver -> 0 GPUs, null driver, ok.
lab_ssh $H 'rm -rf /etc/aicp-lab/gpus /etc/aicp-lab/nvidia-driver-version' || fail "ssh"
steps "facts without a driver" <<'J'
[["facts none", 0, [
  {"gpu_facts": {}},
  {"assert": {"that": ["ansible_facts.gpu_count == 0", "ansible_facts.gpus == []",
                       "ansible_facts.nvidia_driver_version is none"]}}]]]
J

# --- gpu_facts on a DGX-1: 8 x V100 32 GB, driver 535.104.05.
lab_ssh $H 'mkdir -p /etc/aicp-lab && for i in 0 1 2 3 4 5 6 7; do
    echo "Tesla V100-SXM2-32GB|32768|N/A|Enabled"; done >/etc/aicp-lab/gpus &&
    echo 535.104.05 >/etc/aicp-lab/nvidia-driver-version' || fail "ssh"
steps "facts on a DGX-1" <<'J'
[["facts dgx1", 0, [
  {"gpu_facts": {}},
  {"name": "say", "debug": {"msg": "GPUS={{ ansible_facts.gpu_count }}x{{ ansible_facts.gpus[0].name }} DRV={{ ansible_facts.nvidia_driver_version }} MEM={{ ansible_facts.gpus | map(attribute='memory_mib') | sum }}"}},
  {"name": "gated", "debug": {"msg": "EIGHT-GPU-NODE"}, "when": "ansible_facts.gpu_count == 8"},
  {"name": "gated off", "debug": {"msg": "NEVER"}, "when": "ansible_gpu_count > 8"},
  {"assert": {"that": ["ansible_facts.gpus | length == 8",
                       "ansible_facts.gpus[7].index == 7",
                       "ansible_facts.gpus[0].mig_mode is none",
                       "ansible_facts.gpus[0].persistence_mode == 'Enabled'",
                       "ansible_facts.gpus[3].uuid is match('GPU-')"]}}]]]
J
out=$WORK/facts_dgx1.out
grep -q 'GPUS=8xTesla V100-SXM2-32GB DRV=535.104.05 MEM=262144' "$out" || { cat "$out"; fail "templated GPU facts"; }
grep -q 'EIGHT-GPU-NODE' "$out" || fail "when: on gpu_count did not run the task"
grep -q 'NEVER' "$out" && fail "when: ansible_gpu_count > 8 ran the task"

# --- nvidia_driver: the host's driver is gone; install 535, again, 550.
lab_ssh $H 'rm -f /etc/aicp-lab/nvidia-driver-version' || fail "ssh"
steps "nvidia_driver" <<'J'
[["driver install", 2, [{"nvidia_driver": {"version": "535"}, "register": "d"},
   {"assert": {"that": ["d.reboot_required == d.changed"]}}]],
 ["driver again", 0, [{"nvidia_driver": {"version": "535.104.05"}}]],
 ["driver other branch", 2, [{"nvidia_driver": {"version": "550"}, "register": "d"},
   {"assert": {"that": ["d.reboot_required == d.changed"]}}]],
 ["driver other again", 0, [{"nvidia_driver": {"version": "550.54.15"}}]]]
J
grep -q '"reboot_required": true' "$WORK/driver_install.out" || fail "no reboot_required after an install"
grep -q 'WARNING.*nvidia-driver-550 installed: a reboot is pending' "$WORK/driver_other_branch.out" ||
    fail "no pending-reboot warning"
[ "$(lab_ssh $H nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -n 1)" = 550.54.15 ] ||
    fail "the driver did not change to 550.54.15"
"$AICP" run /dev/stdin -i "$LAB/inventory.ini" >"$WORK/bad.out" 2>&1 <<'Y' && fail "an unknown version did not fail"
- hosts: node01
  gather_facts: false
  tasks:
    - nvidia_driver: {version: "535.999.99"}
Y
grep -q 'no nvidia-driver-535 version 535.999.99' "$WORK/bad.out" || { cat "$WORK/bad.out"; fail "unknown version message"; }

# --- nvidia_container_toolkit: an existing config keeps its other lines.
lab_ssh $H 'mkdir -p /etc/containerd && printf "%s\n" "version = 2" "" \
    "[plugins.\"io.containerd.grpc.v1.cri\".containerd]" "  snapshotter = \"overlayfs\"" \
    "  default_runtime_name = \"runc\"" "" \
    "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]" \
    "  runtime_type = \"io.containerd.runc.v2\"" >/etc/containerd/config.toml' || fail "ssh"
steps "nvidia_container_toolkit" <<'J'
[["nct create", 2, [{"nvidia_container_toolkit": {}}]],
 ["nct again", 0, [{"nvidia_container_toolkit": {"default": false}}]],
 ["nct default", 2, [{"nvidia_container_toolkit": {"default": true}}]],
 ["nct default again", 0, [{"nvidia_container_toolkit": {"default": true}}]]]
J
cfg=$(lab_ssh $H cat /etc/containerd/config.toml)
printf '%s\n' "$cfg" | grep -qx '  default_runtime_name = "nvidia"' || { echo "$cfg"; fail "nvidia is not the default runtime"; }
printf '%s\n' "$cfg" | grep -qx '\[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia\]' || fail "no nvidia runtime table"
printf '%s\n' "$cfg" | grep -qx '  BinaryName = "/usr/bin/nvidia-container-runtime"' || fail "no BinaryName"
printf '%s\n' "$cfg" | grep -qx '  snapshotter = "overlayfs"' || fail "other lines were lost"
[ "$(printf '%s\n' "$cfg" | grep -c 'default_runtime_name')" = 1 ] || fail "default_runtime_name twice"
lab_ssh $H systemctl is-active containerd >/dev/null || fail "containerd was not restarted"
steps "nvidia_container_toolkit removal" <<'J'
[["nct absent", 2, [{"nvidia_container_toolkit": {"state": "absent"}}]],
 ["nct absent again", 0, [{"nvidia_container_toolkit": {"state": "absent"}}]]]
J
cfg=$(lab_ssh $H cat /etc/containerd/config.toml)
printf '%s\n' "$cfg" | grep -q 'nvidia' && { echo "$cfg"; fail "nvidia left in config.toml"; }
printf '%s\n' "$cfg" | grep -qx '  default_runtime_name = "runc"' || fail "default runtime not back to runc"
printf '%s\n' "$cfg" | grep -qx '  runtime_type = "io.containerd.runc.v2"' || fail "the runc table was lost"
echo "ok   gpu"

#!/bin/sh
# The validate module. Bare, on a lab host: aicp-trainbench's CPU path,
# uploaded with copy_benchmark (the private temp dir is gone afterwards),
# shows its progress ("  [node01] step 40/401  1234.56 images/sec") while it
# runs, passes a low expectation and fails a high one with a message naming the
# node and the figures; check mode runs nothing; device cuda fails clearly on
# a node whose nvidia-smi stand-in has no driver, no GPU, or fewer GPUs than
# asked; a benchmark missing from the PATH says so. Kubernetes, against the
# fake API server whose Job controller completes each Job with a pod whose
# log is the container's FAKE_LOG: a pass from a tf_cnn_benchmarks log
# against a per-GPU table (the Job deleted after), a figure below the
# expectation, a failed Job, a log with no throughput line, keep_job and
# check mode (nothing created). Distributed (TR-4798's two-node run): the
# worker Deployment on dgx2 (host network, pinned) is Available before the
# master Job is created, the total passes 816 x 8 x 2, and both are deleted
# afterwards, also when the master fails; check mode creates nothing.
. "$top_srcdir/tests/integration/lib.sh"
need_lab
TB="$top_builddir/aicp-trainbench"
[ -x "$TB" ] || skip "no aicp-trainbench at $TB (make builds it)"
lab_up 1
H=node01

# play NAME RC HOSTS INVENTORY [AICP-ARGS...] <<EOF tasks EOF: runs the tasks
# (YAML at column 0) and fails unless aicp exits RC; $OUT is its output.
play() {
    _name=$1 _rc=$2 _hosts=$3 _inv=$4
    shift 4
    {
        printf -- '- hosts: %s\n  gather_facts: false\n  tasks:\n' "$_hosts"
        sed 's/^/    /'
    } >"$WORK/$_name.yml"
    OUT=$WORK/$_name.out
    "$AICP" run "$WORK/$_name.yml" -i "$_inv" -v "$@" >"$OUT" 2>&1
    _got=$?
    [ "$_got" = "$_rc" ] || { cat "$OUT" >&2; fail "$_name: exit $_got, expected $_rc"; }
    echo "ok   $_name (exit $_got)"
}
says() { grep -q -F -e "$2" "$OUT" || { cat "$OUT" >&2; fail "$1: the output does not say: $2"; }; }
INV=$LAB/inventory.ini

# ---- bare, CPU path, uploaded ------------------------------------------------
play cpu-pass 0 $H "$INV" <<EOF
- validate:
    device: cpu
    model: resnet-tiny
    steps: 3
    warmup: 1
    copy_benchmark: "$TB"
    expected_images_per_sec: 1
  register: v
- assert:
    that:
      - v.passed
      - not v.changed
      - v.images_per_sec > 1
      - v.images_per_sec_per_gpu == v.images_per_sec
      - v.expected_images_per_sec == 1
      - v.lower_bound == 0.95
      - v.tolerance == 0.05
      - v.gpu_model == 'cpu'
      - v.gpu_count == 0
      - v.where == 'bare'
      - v.node == 'node01'
      - v.step_ms.p50 > 0
      - v.throughput_line is match('Total images/sec = [0-9]')
      - v.progress | length > 0
      - "v.msg is search('node01 [(]cpu[)]. .* images/sec, at least 0.9 expected [(]1 -5%[)]. passed')"
- debug: {msg: "COPIED={{ v.benchmark_copied_to }}="}
EOF
copied=$(sed -n 's/.*COPIED=\(.*\)=.*/\1/p' "$OUT" | head -n 1)
case $copied in */aicp-trainbench) ;; *) fail "benchmark_copied_to is '$copied'" ;; esac
lab_ssh $H test -e "$(dirname "$copied")" && fail "the upload's temp dir $(dirname "$copied") is left on the node"

# a run of a few seconds shows its progress while it runs, and still
# judges as before
play cpu-progress 0 $H "$INV" <<EOF
- validate:
    device: cpu
    model: resnet-tiny
    steps: 400
    warmup: 1
    batch_size: 8
    extra_args: [--threads, 1]
    copy_benchmark: "$TB"
    expected_images_per_sec: 1
  register: v
- assert: {that: [v.passed, v.progress | length > 0]}
EOF
grep -q -E '^  \[node01\] step [0-9]+/401  [0-9.]+ images/sec$' "$OUT" ||
    { cat "$OUT" >&2; fail "cpu-progress: no progress line on the terminal"; }

play cpu-fail 1 $H "$INV" <<EOF
- validate:
    device: cpu
    model: resnet-tiny
    steps: 2
    warmup: 1
    copy_benchmark: "$TB"
    expected_images_per_sec: 1000000000
    tolerance: 0.1
EOF
says cpu-fail "node01 (cpu): "
says cpu-fail "images/sec, expected at least 900000000.0 (1000000000 -10%)"
says cpu-fail '"passed": false'

# check mode: the GPU query only, nothing uploaded or run
play cpu-check 0 $H "$INV" --check <<EOF
- validate:
    device: cpu
    model: resnet-tiny
    copy_benchmark: "$TB"
    expected_images_per_sec: 1000000000
EOF
says cpu-check "benchmark not run in check mode"
grep -q benchmark_copied_to "$OUT" && fail "check mode uploaded the benchmark"

play not-on-path 1 $H "$INV" <<EOF
- validate: {device: cpu, benchmark_path: aicp-trainbench-nowhere}
EOF
says not-on-path "node01: aicp-trainbench-nowhere is not on the PATH"

# ---- bare, device cuda, against the nvidia-smi stand-in -----------------------
lab_ssh $H 'rm -rf /etc/aicp-lab/gpus /etc/aicp-lab/nvidia-driver-version' || fail "ssh"
play cuda-no-driver 1 $H "$INV" <<EOF
- validate: {model: resnet-tiny, copy_benchmark: "$TB", expected_images_per_sec: 1}
EOF
says cuda-no-driver "nvidia-smi on node01 failed (exit 9): NVIDIA-SMI has failed"

lab_ssh $H 'mkdir -p /etc/aicp-lab && : >/etc/aicp-lab/gpus && echo 535.104.05 >/etc/aicp-lab/nvidia-driver-version' ||
    fail "ssh"
play cuda-zero-gpus 1 $H "$INV" --check <<EOF
- validate: {model: resnet-tiny, copy_benchmark: "$TB", expected_images_per_sec: 1}
EOF
says cuda-zero-gpus "node01 has no GPU: device cuda needs one"

lab_ssh $H 'for i in 0 1 2 3 4 5 6 7; do echo "Tesla V100-SXM2-32GB|32768|N/A|Enabled"; done >/etc/aicp-lab/gpus' ||
    fail "ssh"
play cuda-too-few 1 $H "$INV" <<EOF
- validate: {gpus: 16, copy_benchmark: "$TB", expected_per_gpu: {"Tesla V100-SXM2-32GB": 816}}
EOF
says cuda-too-few "node01 has 8 GPUs, fewer than the 16 asked for (gpus: 16)"

play cuda-unknown-model 1 $H "$INV" --check <<EOF
- validate: {copy_benchmark: "$TB", expected_per_gpu: {"A100-SXM4-80GB": 2500}}
EOF
says cuda-unknown-model "expected_per_gpu has no entry for GPU model 'Tesla V100-SXM2-32GB' (it has 'A100-SXM4-80GB')"

# the lab's GPUs are stand-ins: aicp-trainbench's CUDA path finds no usable
# GPU (or, in a build without CUDA, has no CUDA path); it says so, and so does
# the task
play cuda-no-cuda-build 1 $H "$INV" <<EOF
- validate: {gpus: 4, model: resnet-tiny, copy_benchmark: "$TB", expected_per_gpu: {"tesla v100 sxm2 32gb": 816}}
  register: v
- debug: {var: v}
EOF
says cuda-no-cuda-build "node01 (4x Tesla V100-SXM2-32GB): $(basename "$TB")"
says cuda-no-cuda-build "exited with status 1"
grep -q -e "no CUDA path" -e "no usable CUDA GPU" "$OUT" ||
    { cat "$OUT" >&2; fail "cuda-no-cuda-build: the output does not say why CUDA failed"; }
says cuda-no-cuda-build '"expected_images_per_sec": 3264.0'
says cuda-no-cuda-build '"driver_version": "535.104.05"'

# ---- kubernetes, against the fake API server -------------------------------------
kube_fake_up --controller
LOCAL=$WORK/local.ini
printf 'localhost ansible_connection=local\n' >"$LOCAL"
api() { kube_fake_api "$@"; } # METHOD PATH [JSON]
api POST /api/v1/nodes '{"apiVersion":"v1","kind":"Node","metadata":{"name":"dgx1","labels":{"nvidia.com/gpu.product":"Tesla-V100-SXM2-32GB","nvidia.com/cuda.driver-version.full":"535.104.05"}}}' >/dev/null ||
    fail "creating node dgx1"
api PATCH /api/v1/nodes/dgx1/status '{"status":{"capacity":{"nvidia.com/gpu":"8"},"allocatable":{"nvidia.com/gpu":"8"}}}' >/dev/null ||
    fail "giving node dgx1 its GPUs"
api POST /api/v1/nodes '{"apiVersion":"v1","kind":"Node","metadata":{"name":"cpu1"}}' >/dev/null ||
    fail "creating node cpu1"
KARGS="--kubeconfig $KCFG"

# job_gone NAME: the Job does not exist any more
job_gone() { ! api GET "/apis/batch/v1/namespaces/default/jobs/$1" >/dev/null 2>&1; }

play kube-check 0 localhost "$LOCAL" $KARGS --check <<'EOF'
- validate:
    where: kubernetes
    benchmark: container
    node: dgx1
    image: nvcr.io/nvidia/tensorflow:19.04-py3
    command: [python, tf_cnn_benchmarks.py, --model=resnet50]
    expected_per_gpu: {"Tesla V100-SXM2-32GB": 816}
EOF
says kube-check "benchmark not run in check mode"
job_gone aicp-validate-dgx1 || fail "check mode created the Job"

LOG='Step\tImg/sec\ttotal_loss\n100\timages/sec: 6530.3 +/- 2.1 (jitter = 18.7)\t7.673\n----\ntotal images/sec: 6530.24\n----\n'
play kube-pass 0 localhost "$LOCAL" $KARGS <<EOF
- validate:
    where: kubernetes
    benchmark: container
    node: dgx1
    image: nvcr.io/nvidia/tensorflow:19.04-py3
    command: [python, tf_cnn_benchmarks.py, --model=resnet50]
    env: {FAKE_LOG: "$LOG"}
    dataset_pvcs: [pb-fg-all-iface1, pb-fg-all-iface2]
    results_pvc: tensorflow-results
    expected_per_gpu: {"Tesla V100-SXM2-32GB": 816}
  register: v
- assert:
    that:
      - v.passed
      - not v.changed
      - v.images_per_sec == 6530.24
      - v.images_per_sec_per_gpu == 816.28
      - v.expected_images_per_sec == 6528
      - v.gpu_count == 8
      - v.gpu_model == 'Tesla-V100-SXM2-32GB'
      - v.driver_version == '535.104.05'
      - v.where == 'kubernetes'
      - v.node == 'dgx1'
      - v.job == 'aicp-validate-dgx1'
      - "v.throughput_line == 'total images/sec: 6530.24'"
      - v.progress | length == 1
EOF
job_gone aicp-validate-dgx1 || fail "the Job was not deleted after the run"

# keep_job: the Job stays, with the seed's shape; a second run replaces it
play kube-keep 0 localhost "$LOCAL" $KARGS <<EOF
- validate:
    where: kubernetes
    benchmark: container
    node: dgx1
    gpus: 4
    image: nvcr.io/nvidia/tensorflow:19.04-py3
    env: {FAKE_LOG: "$LOG"}
    dataset_pvcs: [pb-fg-all-iface1, pb-fg-all-iface2]
    results_pvc: tensorflow-results
    expected_images_per_sec: 3000
    keep_job: true
EOF
job=$(api GET /apis/batch/v1/namespaces/default/jobs/aicp-validate-dgx1) || fail "keep_job: the Job is gone"
printf '%s' "$job" | python3 -c '
import json, sys
j = json.load(sys.stdin)
s = j["spec"]; p = s["template"]["spec"]; c = p["containers"][0]
assert s["backoffLimit"] == 0, s
assert p["restartPolicy"] == "Never", p
assert p["nodeSelector"] == {"kubernetes.io/hostname": "dgx1"}, p
assert c["resources"]["limits"]["nvidia.com/gpu"] == "4", c
m = {v["mountPath"]: v for v in c["volumeMounts"]}
assert m["/mnt/dataset1"]["readOnly"] and m["/mnt/dataset2"]["readOnly"], m
assert "/mnt/results" in m and "/dev/shm" in m, m
v = {x["name"]: x for x in p["volumes"]}
assert v["dataset2"]["persistentVolumeClaim"]["claimName"] == "pb-fg-all-iface2", v
assert v["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "16Gi"}, v
assert j["metadata"]["labels"]["aicp.io/validate"] == "dgx1", j["metadata"]
' || fail "the Job does not have the seed's shape"
play kube-keep-again 0 localhost "$LOCAL" $KARGS <<EOF
- validate:
    where: kubernetes
    benchmark: container
    node: dgx1
    image: nvcr.io/nvidia/tensorflow:19.04-py3
    env: {FAKE_LOG: "$LOG"}
    expected_images_per_sec: 6530
EOF
job_gone aicp-validate-dgx1 || fail "the kept Job was not replaced and deleted"

play kube-slow 1 localhost "$LOCAL" $KARGS <<'EOF'
- validate:
    where: kubernetes
    benchmark: container
    node: dgx1
    image: nvcr.io/nvidia/tensorflow:19.04-py3
    env: {FAKE_LOG: "total images/sec: 5210.4\n"}
    expected_images_per_sec: 6530
EOF
says kube-slow "dgx1 (8x Tesla-V100-SXM2-32GB): 5210.4 images/sec, expected at least 6203.5 (6530 -5%)"
job_gone aicp-validate-dgx1 || fail "the Job of a failed verdict was not deleted"

play kube-job-failed 1 localhost "$LOCAL" $KARGS <<'EOF'
- validate:
    where: kubernetes
    benchmark: container
    node: dgx1
    image: nvcr.io/nvidia/tensorflow:19.04-py3
    env: {FAKE_FAIL: "1", FAKE_LOG: "Traceback: CUDA error: out of memory\n"}
    expected_images_per_sec: 6530
EOF
says kube-job-failed "Job default/aicp-validate-dgx1 failed (BackoffLimitExceeded: Job has reached the specified backoff limit)"
says kube-job-failed "CUDA error: out of memory"

play kube-no-line 1 localhost "$LOCAL" $KARGS <<'EOF'
- validate:
    where: kubernetes
    node: dgx1
    image: registry.example.com/aicp-trainbench:1
    env: {FAKE_LOG: "step 3/5 loss 2.1\nSegmentation fault\n"}
    expected_images_per_sec: 6530
EOF
says kube-no-line "no throughput line matching"
says kube-no-line "Segmentation fault"

play kube-no-gpu 1 localhost "$LOCAL" $KARGS <<'EOF'
- validate:
    where: kubernetes
    node: cpu1
    image: registry.example.com/aicp-trainbench:1
EOF
says kube-no-gpu "node cpu1 has no allocatable nvidia.com/gpu"

# trainbench's CPU path in a Job: the command line is aicp-trainbench's
play kube-cpu 0 localhost "$LOCAL" $KARGS <<'EOF'
- validate:
    where: kubernetes
    device: cpu
    node: cpu1
    model: resnet-tiny
    steps: 3
    image: registry.example.com/aicp-trainbench:1
    env: {FAKE_LOG: "Total images/sec = 1197.97\n"}
    expected_per_gpu: {cpu: 1000}
  register: v
- assert:
    that: [v.passed, v.gpu_model == 'cpu', v.expected_images_per_sec == 1000]
EOF

# ---- kubernetes, distributed: TR-4798's two-node run ---------------------------
api POST /api/v1/nodes '{"apiVersion":"v1","kind":"Node","metadata":{"name":"dgx2","labels":{"nvidia.com/gpu.product":"Tesla-V100-SXM2-32GB","nvidia.com/cuda.driver-version.full":"535.104.05"}}}' >/dev/null ||
    fail "creating node dgx2"
api PATCH /api/v1/nodes/dgx2/status '{"status":{"capacity":{"nvidia.com/gpu":"8"},"allocatable":{"nvidia.com/gpu":"8"}}}' >/dev/null ||
    fail "giving node dgx2 its GPUs"
W=aicp-validate-dgx1-worker-dgx2
deploy_gone() { ! api GET "/apis/apps/v1/namespaces/default/deployments/$1" >/dev/null 2>&1; }
# requests: the fake's request log, one "METHOD PATH?QUERY" a line
requests() {
    api GET /_fake/requests | python3 -c '
import json, sys
for r in json.load(sys.stdin):
    q = r.get("query") or ""
    if isinstance(q, dict):
        q = "&".join("%s=%s" % (k, v if isinstance(v, str) else v[0]) for k, v in q.items())
    print(r["method"], r["path"] + ("?" + q if q else ""))'
}
DLOG='Step\tImg/sec\ttotal_loss\n100\timages/sec: 12881.5 +/- 3.0 (jitter = 20.1)\t7.671\n----\ntotal images/sec: 12881.2\n----\n'
# dist TASK-EXTRA: the two-node task (plus the YAML lines given)
dist() {
    cat <<EOF
- validate:
    where: kubernetes
    benchmark: container
    node: dgx1
    worker_nodes: [dgx2]
    image: nvcr.io/nvidia/tensorflow:19.04-py3
    command: [mpirun, --allow-run-as-root, -np, "16", -H, "dgx1:8,dgx2:8", python,
              tf_cnn_benchmarks.py, --model=resnet50, --variable_update=horovod]
    dataset_pvcs: [pb-fg-all-iface1]
    expected_per_gpu: {"Tesla V100-SXM2-32GB": 816}
$(sed 's/^/    /')
  register: v
EOF
}

dist </dev/null >"$WORK/t.tasks"
play dist-check 0 localhost "$LOCAL" $KARGS --check <"$WORK/t.tasks"
says dist-check "benchmark not run in check mode"
deploy_gone $W || fail "check mode created the worker Deployment"
job_gone aicp-validate-dgx1 || fail "check mode created the Job"

# keep_job: the worker and the Job stay, to be looked at
printf 'env: {FAKE_LOG: "%s"}\nkeep_job: true\nworker_command: [/usr/sbin/sshd, -D, -p, "2222"]\n' "$DLOG" |
    dist >"$WORK/t.tasks"
play dist-keep 0 localhost "$LOCAL" $KARGS <"$WORK/t.tasks"
api GET /apis/apps/v1/namespaces/default/deployments/$W >"$WORK/worker.json" || fail "keep_job: no worker"
api GET /apis/batch/v1/namespaces/default/jobs/aicp-validate-dgx1 >"$WORK/job.json" || fail "keep_job: no Job"
python3 - "$WORK/worker.json" "$WORK/job.json" <<'PY2' || fail "the worker and the Job are not TR-4798's"
import json, sys
d = json.load(open(sys.argv[1])); j = json.load(open(sys.argv[2]))
p = d["spec"]["template"]["spec"]; c = p["containers"][0]
assert d["spec"]["replicas"] == 1 and d["spec"]["strategy"]["type"] == "Recreate", d["spec"]
assert p["hostNetwork"] is True and p["dnsPolicy"] == "ClusterFirstWithHostNet", p
assert p["nodeSelector"] == {"kubernetes.io/hostname": "dgx2"}, p
assert c["image"] == "nvcr.io/nvidia/tensorflow:19.04-py3", c
assert c["command"] == ["/usr/sbin/sshd", "-D", "-p", "2222"], c
assert c["resources"]["limits"]["nvidia.com/gpu"] == "8", c
assert {m["mountPath"] for m in c["volumeMounts"]} == {"/mnt/dataset1", "/dev/shm"}, c
assert d["metadata"]["labels"]["aicp.io/validate"] == "dgx1", d["metadata"]
assert any(x["type"] == "Available" and x["status"] == "True" for x in d["status"]["conditions"])
jp = j["spec"]["template"]["spec"]
assert jp["hostNetwork"] is True and jp["nodeSelector"] == {"kubernetes.io/hostname": "dgx1"}, jp
assert jp["containers"][0]["command"][0] == "mpirun", jp
assert jp["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "8", jp
PY2

# the pass: the kept ones replaced, the worker Available before the Job, both deleted
api POST /_fake/reset '{}' >/dev/null || fail "resetting the request log"
printf 'env: {FAKE_LOG: "%s"}\n' "$DLOG" | dist >"$WORK/dist-pass.tasks"
cat >>"$WORK/dist-pass.tasks" <<'EOF'
- assert:
    that:
      - v.passed
      - not v.changed
      - v.images_per_sec == 12881.2
      - v.images_per_sec_per_gpu == 805.075
      - v.expected_images_per_sec == 13056
      - v.lower_bound > 12403.1 and v.lower_bound < 12403.3
      - v.gpu_count == 16
      - v.node == 'dgx1+dgx2'
      - v.nodes == ['dgx1', 'dgx2']
      - v.workers == ['aicp-validate-dgx1-worker-dgx2']
      - v.job == 'aicp-validate-dgx1'
      - "v.msg is search('dgx1[+]dgx2 [(]16x Tesla-V100-SXM2-32GB on 2 nodes[)]: 12881.2 images/sec')"
EOF
play dist-pass 0 localhost "$LOCAL" $KARGS <"$WORK/dist-pass.tasks"
deploy_gone $W || fail "the worker Deployment was not deleted after the run"
job_gone aicp-validate-dgx1 || fail "the Job was not deleted after the run"
requests >"$WORK/dist.requests"
python3 - "$WORK/dist.requests" "$W" <<'PY2' || { cat "$WORK/dist.requests" >&2; fail "not worker first, then the Job, then both deleted"; }
import sys
lines = [l.split(" ", 1) for l in open(sys.argv[1]).read().splitlines()]
dep = "/apis/apps/v1/namespaces/default/deployments/" + sys.argv[2]
job = "/apis/batch/v1/namespaces/default/jobs/aicp-validate-dgx1"
def first(m, path, after=-1):
    return next(i for i, (mm, p) in enumerate(lines) if i > after and mm == m and p.split("?")[0] == path)
dcreate = first("PATCH", dep)
dready = first("GET", dep, dcreate)
jcreate = first("PATCH", job)
assert dcreate < dready < jcreate, (dcreate, dready, jcreate)
assert first("DELETE", dep, jcreate) and first("DELETE", job, jcreate)
PY2

# a failing master Job takes its worker with it
printf 'env: {FAKE_FAIL: "1", FAKE_LOG: "mpirun: ssh: connect to host dgx2 port 2222: Connection refused\\n"}\n' |
    dist >"$WORK/t.tasks"
play dist-fail 1 localhost "$LOCAL" $KARGS <"$WORK/t.tasks"
says dist-fail "dgx1+dgx2 (16x Tesla-V100-SXM2-32GB on 2 nodes): Job default/aicp-validate-dgx1 failed (BackoffLimitExceeded"
says dist-fail "Connection refused"
deploy_gone $W || fail "a failed master Job left the worker Deployment"
job_gone aicp-validate-dgx1 || fail "a failed master Job was not deleted"

# a worker node that is not there fails before anything is created
play dist-no-node 1 localhost "$LOCAL" $KARGS <<'EOF'
- validate:
    where: kubernetes
    benchmark: container
    node: dgx1
    worker_nodes: [dgx2, dgx9]
    image: nvcr.io/nvidia/tensorflow:19.04-py3
    expected_images_per_sec: 12881
EOF
says dist-no-node "node dgx9 does not exist in the cluster"
deploy_gone $W || fail "a missing worker node still got a worker"
play dist-master-as-worker 1 localhost "$LOCAL" $KARGS <<'EOF'
- validate: {where: kubernetes, node: dgx1, worker_nodes: [dgx1], image: x, benchmark: container}
EOF
says dist-master-as-worker "worker_nodes: dgx1 is node, the master's"
echo "ok   validate"

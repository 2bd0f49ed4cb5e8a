#!/bin/sh
# `aicp validate SITE --report DIR` on a lab host and the Kubernetes fake:
# a site whose validation entries run aicp-trainbench's CPU path on node01
# (uploaded with copy_benchmark), and the same benchmark both bare and as a
# Kubernetes Job pinned to node01 (the fake's Job controller completes the
# Job and its pod log carries the throughput line). All pass: exit 0, a
# verdict line per node and run, the Kubernetes-over-bare overhead, and the
# three report files (the HTML page's chart has a bar per check). Raising
# the expectation fails: exit 1, the verdict naming node and figures, the
# JUnit file counting the failures. Bad entries are exit 65 with file:line.
. "$top_srcdir/tests/integration/lib.sh"
need_lab
TB=$top_builddir/aicp-trainbench
[ -x "$TB" ] || skip "no aicp-trainbench at $TB"
lab_up 1
kube_fake_up --controller
T=$KDIR
unset KUBECONFIG
kubectl --kubeconfig "$KCFG" apply --validate=false -f - >/dev/null 2>&1 <<'EOF' ||
apiVersion: v1
kind: Node
metadata:
  name: node01
  labels: {nvidia.com/gpu.product: Tesla-V100-SXM2-32GB}
EOF
    fail "creating the Node"

site() { # site EXPECTED
    cat >"$T/site.yml" <<EOF
site: val-pod
inventory: $LAB/inventory.ini
kubernetes: {kubeconfig: $KCFG}
vars: {expected: $1}
validation:
  - name: tiny
    nodes: node01
    benchmark: resnet-tiny
    device: cpu
    steps: 4
    warmup: 1
    batch_size: 8
    copy_benchmark: $TB
    expected_images_per_sec: "{{ expected }}"
  - name: tiny-both
    nodes: [node01]
    where: both
    benchmark: resnet-tiny
    device: cpu
    gpus: 1
    steps: 4
    warmup: 1
    batch_size: 8
    copy_benchmark: $TB
    image: registry.example/aicp-trainbench:0.1
    env: {FAKE_LOG: "step 4 images/sec 900\\nTotal images/sec = 900.00\\n"}
    expected_images_per_sec: "{{ expected }}"
EOF
}

site 1
"$AICP" validate "$T/site.yml" --report "$T/report" >"$T/pass.out" 2>&1
rc=$?
[ $rc -eq 0 ] || { cat "$T/pass.out"; fail "validate exits $rc, not 0"; }
grep -q '^node01 *bare *tiny *PASS  [0-9.]* images/sec' "$T/pass.out" ||
    { cat "$T/pass.out"; fail "no bare verdict for tiny"; }
grep -q '^node01 *kubernetes *tiny-both *PASS  900.00 images/sec' "$T/pass.out" ||
    { cat "$T/pass.out"; fail "no Kubernetes verdict"; }
grep -q '^node01 *Kubernetes over bare: 900.00 vs [0-9.]* images/sec, overhead -\{0,1\}[0-9.]*%' \
    "$T/pass.out" || { cat "$T/pass.out"; fail "no overhead line"; }
grep -q '3 of 3 checks passed' "$T/pass.out" || { cat "$T/pass.out"; fail "not 3 of 3"; }
for f in report.json junit.xml report.html; do
    [ -s "$T/report/$f" ] || fail "no $f"
done
python3 - "$T/report" <<'EOF' || fail "the report files do not agree with the run"
import json, re, sys
d = sys.argv[1]
r = json.load(open(d + "/report.json"))
assert r["kind"] == "validate" and r["site"] == "val-pod", r
assert len(r["checks"]) == 3 and all(c["passed"] for c in r["checks"]), r["checks"]
assert r["summary"]["passed"] == 3 and r["summary"]["verdict"] == "pass", r["summary"]
assert len(r["comparison"]) == 1 and r["comparison"][0]["node"] == "node01", r["comparison"]
assert r["run_id"], r
j = open(d + "/junit.xml").read()
assert 'tests="3"' in j and 'failures="0"' in j, j
h = open(d + "/report.html").read()
assert len(re.findall(r'<rect class="bar pass"', h)) == 3, h
assert "http://" not in h.replace("http://www.w3.org/2000/svg", "") and "https://" not in h
EOF
echo "ok   validate: 3 checks pass, verdicts, overhead, report.json/junit.xml/report.html"

site 1000000000
"$AICP" validate "$T/site.yml" --report "$T/report2" >"$T/fail.out" 2>&1
rc=$?
[ $rc -eq 1 ] || { cat "$T/fail.out"; fail "validate below expectation exits $rc, not 1"; }
grep -q '^node01 *bare *tiny *FAIL .*expected at least 950000000.00' "$T/fail.out" ||
    { cat "$T/fail.out"; fail "the failing verdict does not name the figures"; }
grep -q '0 of 3 checks passed' "$T/fail.out" || { cat "$T/fail.out"; fail "not 0 of 3"; }
grep -q 'failures="3"' "$T/report2/junit.xml" || fail "junit.xml does not count 3 failures"
echo "ok   validate below expectation: exit 1, the verdict names node and figures"

# A Job that runs a while: its progress is read from the pod's log as it
# goes (the fake's pod writes its log over FAKE_RUN_S seconds).
cat >"$T/slow.yml" <<EOF
site: val-slow
kubernetes: {kubeconfig: $KCFG}
validation:
  - name: slow
    nodes: node01
    where: kubernetes
    benchmark: container
    device: cpu
    image: registry.example/aicp-trainbench:0.1
    command: [aicp-trainbench]
    env:
      FAKE_RUN_S: "7"
      FAKE_LOG: "step 1/5 (warm-up)  loss 2.3026  100.00 images/sec\\nstep 2/5  loss 2.2  200.00 images/sec\\nstep 3/5  loss 2.1  300.00 images/sec\\nstep 4/5  loss 2.0  400.00 images/sec\\nstep 5/5  loss 1.9  500.00 images/sec\\nTotal images/sec = 450.00\\n"
    expected_per_gpu: {cpu: 100}
EOF
"$AICP" validate "$T/slow.yml" >"$T/slow.out" 2>&1
rc=$?
[ $rc -eq 0 ] || { cat "$T/slow.out"; fail "the slow Job's validate exits $rc, not 0"; }
grep -q '^node01 *kubernetes *slow *PASS  450.00 images/sec' "$T/slow.out" ||
    { cat "$T/slow.out"; fail "no verdict for the slow Job"; }
python3 - "$T/slow.out" <<'EOF' || { cat "$T/slow.out"; fail "no progress while the Job ran"; }
import re, sys
out = open(sys.argv[1]).read()
verdict = re.search(r"^node01 +kubernetes +slow ", out, re.M).start()
steps = [int(m.group(1)) for m in re.finditer(r"^  \[node01\] step (\d)/5.*images/sec$", out[:verdict], re.M)]
assert len(steps) >= 2 and steps == sorted(set(steps)), steps
EOF
echo "ok   a running Job's progress is shown from its log while it runs"

# distributed: one Kubernetes run across both nodes, node01's Job the master
kubectl --kubeconfig "$KCFG" apply --validate=false -f - >/dev/null 2>&1 <<'EOF' ||
apiVersion: v1
kind: Node
metadata: {name: node02}
EOF
    fail "creating the Node node02"
cat >"$T/dist.yml" <<EOF
site: val-dist
kubernetes: {kubeconfig: $KCFG}
validation:
  - name: two-node
    nodes: [node01, node02]
    where: kubernetes
    distributed: true
    benchmark: container
    device: cpu
    image: registry.example/tensorflow:19.04
    command: [mpirun, -H, "node01,node02", python, tf_cnn_benchmarks.py]
    env: {FAKE_LOG: "total images/sec: 1800.00\\n"}
    expected_per_gpu: {cpu: 900}
EOF
"$AICP" validate "$T/dist.yml" >"$T/dist.out" 2>&1
rc=$?
[ $rc -eq 0 ] || { cat "$T/dist.out"; fail "distributed validate exits $rc, not 0"; }
grep -q '^node01+node02 *kubernetes *two-node *PASS  1800.00 images/sec.*expected at least 1710.00' \
    "$T/dist.out" || { cat "$T/dist.out"; fail "no distributed verdict for node01+node02"; }
grep -q '1 of 1 checks passed' "$T/dist.out" || { cat "$T/dist.out"; fail "not 1 of 1"; }
kubectl --kubeconfig "$KCFG" get deployments -o name 2>/dev/null | grep -q . &&
    fail "the worker Deployment is left"
printf 'validation:\n  - {nodes: [a, b], distributed: true, expected_images_per_sec: 1}\n' >"$T/bad-dist.yml"
"$AICP" validate "$T/bad-dist.yml" >"$T/bad.out" 2>&1
rc=$?
[ $rc -eq 65 ] && grep -q 'bad-dist.yml:2:.*distributed is for where: kubernetes' "$T/bad.out" ||
    { cat "$T/bad.out"; fail "distributed without where: kubernetes gives $rc"; }
echo "ok   distributed: one check across node01+node02, its worker deleted"

printf 'validation:\n  - {nodes: node01, wher: bare, expected_images_per_sec: 1}\n' >"$T/bad.yml"
"$AICP" validate "$T/bad.yml" >"$T/bad.out" 2>&1
rc=$?
[ $rc -eq 65 ] && grep -q 'bad.yml:2:.*unknown key .wher.' "$T/bad.out" ||
    { cat "$T/bad.out"; fail "a bad entry gives $rc"; }
"$AICP" validate "$T/site.yml" --state absent >/dev/null 2>&1
[ $? -eq 64 ] || fail "validate --state is not a usage error"
echo "ok   bad validation entries: exit 65 with file:line; a bad option 64"

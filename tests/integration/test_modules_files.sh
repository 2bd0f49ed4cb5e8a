#!/bin/sh
# The life cycle of the file and command modules on a lab host (see cycle.py),
# then the result keys of file, copy and template against what Ansible
# returns, and how copy remote_src stages its temp file.
. "$top_srcdir/tests/integration/lib.sh"
need_lab
lab_up 1
python3 "$top_srcdir/tests/integration/cycle.py" "$AICP" "$LAB/inventory.ini" node01 "$WORK" \
    file file_link copy template lineinfile command shell fetch || fail "module life cycle"

R=/opt/aicp-results
printf 'v = {{ v }}\n' > "$WORK/r.j2"
cat > "$WORK/results.yml" <<PB
- hosts: node01
  gather_facts: false
  vars: {v: 1}
  tasks:
    - {name: dir, file: {path: $R, state: directory}}
    - {name: touch new, file: {path: $R/touched, state: touch}}
    - {name: touch mode, file: {path: $R/touched, state: touch, mode: "0640"}}
    - {name: link, file: {path: $R/lnk, src: /etc/hostname, state: link}}
    - {name: link again, file: {path: $R/lnk, src: /etc/hostname, state: link}}
    - {name: hard, file: {path: $R/hard, src: $R/touched, state: hard}}
    - {name: absent, file: {path: $R/hard, state: absent}}
    - {name: copy content, copy: {dest: $R/c1, content: "hello\n"}}
    - {name: copy remote, copy: {dest: $R/c2, src: $R/c1, remote_src: true}}
    - {name: copy remote again, copy: {dest: $R/c2, src: $R/c1, remote_src: true}}
    - {name: template, template: {dest: $R/t1, src: $WORK/r.j2}}
    # remote_src stages in a mktemp file that already has the final mode
    # (validate sees it), and leaves nothing behind when a step fails.
    - {name: secret source, copy: {dest: $R/secret.src, content: "s3cret\n", mode: "0644"}}
    - name: remote staged
      copy:
        dest: $R/c3
        src: $R/secret.src
        remote_src: true
        mode: "0600"
        validate: "sh -c 'stat -c \"%a %n\" \"\$1\" > $R/seen' sh %s"
    - name: remote bad owner
      copy: {dest: $R/c4, src: $R/secret.src, remote_src: true, mode: "0600", owner: no-such-user-aicp}
      ignore_errors: true
PB
"$AICP" run "$WORK/results.yml" -i "$LAB/inventory.ini" --json "$WORK/results.json" \
    > "$WORK/results.out" 2>&1
[ $? = 2 ] || { cat "$WORK/results.out"; fail "results playbook"; }
lab_ssh node01 "cat $R/seen; ls -A $R" > "$WORK/remote.txt" || fail "reading the results dir"
python3 - "$WORK/results.json" "$WORK/remote.txt" <<'PY' || fail "result keys"
import hashlib, json, sys
rep = json.load(open(sys.argv[1]))
res = {t["name"]: t["hosts"]["node01"]["result"] for p in rep["plays"] for t in p["tasks"]}
bad = []
def want(task, **kv):
    r = res[task]
    for k, v in kv.items():
        if v is None:
            if k in r:
                bad.append("%s: unexpected %s=%r" % (task, k, r[k]))
        elif r.get(k) != v:
            bad.append("%s: %s=%r, expected %r" % (task, k, r.get(k), v))
stat = dict(owner="root", group="root", uid=0, gid=0)
R = "/opt/aicp-results"
# Ansible's file module calls the path dest for touch, link and hard, and
# reports the state after the task.
want("touch new", dest=R + "/touched", path=None, state="file", mode="0644", size=0, **stat)
want("touch mode", dest=R + "/touched", state="file", mode="0640", **stat)
# A link as lstat sees it: 0777, the length of its target.
for t in ("link", "link again"):
    want(t, dest=R + "/lnk", state="link", src="/etc/hostname", mode="0777",
         size=len("/etc/hostname"), **stat)
want("hard", dest=R + "/hard", state="hard", src=R + "/touched", mode="0640", size=0)
want("absent", path=R + "/hard", state="absent", mode=None, size=None, owner=None, uid=None)
md5 = hashlib.md5(b"hello\n").hexdigest()
sha1 = hashlib.sha1(b"hello\n").hexdigest()
want("copy content", dest=R + "/c1", md5sum=md5, checksum=sha1, state="file", size=6)
for t in ("copy remote", "copy remote again"):
    want(t, dest=R + "/c2", src=R + "/c1", md5sum=md5, checksum=sha1, mode="0644")
want("template", md5sum=hashlib.md5(b"v = 1\n").hexdigest(), state="file")
seen, *names = open(sys.argv[2]).read().split("\n")
mode, _, tmp = seen.partition(" ")
if mode != "600" or not tmp.startswith(R + "/.aicp-tmp."):
    bad.append("remote_src staged in %r with mode %s, expected %s/.aicp-tmp.* 600" % (tmp, mode, R))
left = [n for n in names if n.startswith(".")]
if left or "c4" in names:
    bad.append("a failed remote_src copy left %s" % (left or ["c4"]))
if not res["remote bad owner"].get("failed"):
    bad.append("remote bad owner did not fail")
print("\n".join(bad))
sys.exit(1 if bad else 0)
PY
echo PASS

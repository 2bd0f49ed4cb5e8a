#!/usr/bin/env python3
"""The module life cycle on a lab host, through `aicp run`.

For every case: create -> changed; the same again -> unchanged; different ->
changed; remove -> changed; remove again -> unchanged. Before each real run
the same playbook runs with --check, and its prediction (exit status and the
per-task status in the JSON report) must equal what the real run then does.
After each real run a --check run must report nothing left to change.

usage: cycle.py AICP INVENTORY HOST WORKDIR CASE...   (CASE: a name below)
"""
import json
import os
import subprocess
import sys

T = "/opt/aicp-cycle"

# name: (steps), each step (label, expected exit status, task)
CASES = {
    "file": [
        ("create", 2, {"file": {"path": T + "/d", "state": "directory", "mode": "0755"}}),
        ("again", 0, {"file": {"path": T + "/d", "state": "directory", "mode": "0755"}}),
        ("different", 2, {"file": {"path": T + "/d", "state": "directory", "mode": "0700"}}),
        ("remove", 2, {"file": {"path": T + "/d", "state": "absent"}}),
        ("remove again", 0, {"file": {"path": T + "/d", "state": "absent"}}),
    ],
    "file_link": [
        ("create", 2, {"file": {"path": T + "/l", "src": "/etc/hostname", "state": "link"}}),
        ("again", 0, {"file": {"path": T + "/l", "src": "/etc/hostname", "state": "link"}}),
        ("different", 2, {"file": {"path": T + "/l", "src": "/etc/os-release", "state": "link"}}),
        ("remove", 2, {"file": {"path": T + "/l", "state": "absent"}}),
        ("remove again", 0, {"file": {"path": T + "/l", "state": "absent"}}),
    ],
    "copy": [
        ("create", 2, {"copy": {"dest": T + "/c.conf", "content": "a = 1\n", "mode": "0640"}}),
        ("again", 0, {"copy": {"dest": T + "/c.conf", "content": "a = 1\n", "mode": "0640"}}),
        ("different", 2, {"copy": {"dest": T + "/c.conf", "content": "a = 2\n", "mode": "0640"}}),
        ("remove", 2, {"file": {"path": T + "/c.conf", "state": "absent"}}),
        ("remove again", 0, {"file": {"path": T + "/c.conf", "state": "absent"}}),
    ],
    "template": [
        ("create", 2, {"template": {"src": "cycle.j2", "dest": T + "/t.conf"}, "vars": {"v": 1}}),
        ("again", 0, {"template": {"src": "cycle.j2", "dest": T + "/t.conf"}, "vars": {"v": 1}}),
        ("different", 2, {"template": {"src": "cycle.j2", "dest": T + "/t.conf"}, "vars": {"v": 2}}),
        ("remove", 2, {"file": {"path": T + "/t.conf", "state": "absent"}}),
        ("remove again", 0, {"file": {"path": T + "/t.conf", "state": "absent"}}),
    ],
    "lineinfile": [
        ("create", 2, {"lineinfile": {"path": T + "/l.conf", "line": "x=1", "create": True}}),
        ("again", 0, {"lineinfile": {"path": T + "/l.conf", "line": "x=1", "create": True}}),
        ("different", 2, {"lineinfile": {"path": T + "/l.conf", "regexp": "^x=", "line": "x=2"}}),
        ("remove", 2, {"lineinfile": {"path": T + "/l.conf", "regexp": "^x=", "state": "absent"}}),
        ("remove again", 0, {"lineinfile": {"path": T + "/l.conf", "regexp": "^x=", "state": "absent"}}),
    ],
    "command": [
        ("create", 2, {"command": {"cmd": "touch " + T + "/cmd", "creates": T + "/cmd"}}),
        ("again", 0, {"command": {"cmd": "touch " + T + "/cmd", "creates": T + "/cmd"}}),
        ("different", 2, {"command": {"cmd": "touch " + T + "/cmd2", "creates": T + "/cmd2"}}),
        ("remove", 2, {"command": {"cmd": "rm " + T + "/cmd " + T + "/cmd2", "removes": T + "/cmd"}}),
        ("remove again", 0, {"command": {"cmd": "rm " + T + "/cmd", "removes": T + "/cmd"}}),
    ],
    "shell": [
        ("create", 2, {"shell": "echo hi > " + T + "/sh && echo done", "args": {"creates": T + "/sh"}}),
        ("again", 0, {"shell": "echo hi > " + T + "/sh", "args": {"creates": T + "/sh"}}),
        ("different", 2, {"shell": "echo ho > " + T + "/sh2", "args": {"creates": T + "/sh2"}}),
        ("remove", 2, {"shell": "rm -f " + T + "/sh " + T + "/sh2", "args": {"removes": T + "/sh"}}),
        ("remove again", 0, {"shell": "rm -f " + T + "/sh", "args": {"removes": T + "/sh"}}),
    ],
    "sysctl": [
        ("create", 2, {"sysctl": {"name": "net.ipv4.ip_forward", "value": "1",
                                  "sysctl_file": "/etc/sysctl.d/90-cycle.conf", "reload": True}}),
        ("again", 0, {"sysctl": {"name": "net.ipv4.ip_forward", "value": "1",
                                 "sysctl_file": "/etc/sysctl.d/90-cycle.conf", "reload": True}}),
        ("different", 2, {"sysctl": {"name": "net.ipv4.ip_forward", "value": "0",
                                     "sysctl_file": "/etc/sysctl.d/90-cycle.conf", "reload": True}}),
        ("remove", 2, {"sysctl": {"name": "net.ipv4.ip_forward", "state": "absent",
                                  "sysctl_file": "/etc/sysctl.d/90-cycle.conf"}}),
        ("remove again", 0, {"sysctl": {"name": "net.ipv4.ip_forward", "state": "absent",
                                        "sysctl_file": "/etc/sysctl.d/90-cycle.conf"}}),
    ],
    "modprobe": [
        ("create", 2, {"modprobe": {"name": "br_netfilter", "state": "present", "persistent": "present"}}),
        ("again", 0, {"modprobe": {"name": "br_netfilter", "state": "present", "persistent": "present"}}),
        ("different", 2, {"modprobe": {"name": "br_netfilter", "state": "present", "persistent": "present",
                                       "params": "foo=1"}}),
        ("remove", 2, {"modprobe": {"name": "br_netfilter", "state": "absent", "persistent": "absent"}}),
        ("remove again", 0, {"modprobe": {"name": "br_netfilter", "state": "absent", "persistent": "absent"}}),
    ],
    "service": [
        ("create", 2, {"service": {"name": "aicp-cycle", "state": "started"}}),
        ("again", 0, {"service": {"name": "aicp-cycle", "state": "started"}}),
        ("different", 2, {"service": {"name": "aicp-cycle", "state": "started", "enabled": True}}),
        ("remove", 2, {"service": {"name": "aicp-cycle", "state": "stopped", "enabled": False}}),
        ("remove again", 0, {"service": {"name": "aicp-cycle", "state": "stopped", "enabled": False}}),
    ],
    "systemd": [
        ("create", 2, {"systemd": {"name": "aicp-cycle2", "state": "started", "daemon_reload": False}}),
        ("again", 0, {"systemd": {"name": "aicp-cycle2", "state": "started"}}),
        ("different", 2, {"systemd": {"name": "aicp-cycle2", "enabled": True}}),
        ("remove", 2, {"systemd": {"name": "aicp-cycle2", "state": "stopped", "enabled": False}}),
        ("remove again", 0, {"systemd": {"name": "aicp-cycle2", "state": "stopped", "enabled": False}}),
    ],
    "apt": [
        ("create", 2, {"apt": {"name": "aicp-lab-tool=1.0", "state": "present"}}),
        ("again", 0, {"apt": {"name": "aicp-lab-tool=1.0", "state": "present"}}),
        ("different", 2, {"apt": {"name": "aicp-lab-tool", "state": "latest"}}),
        ("remove", 2, {"apt": {"name": "aicp-lab-tool", "state": "absent"}}),
        ("remove again", 0, {"apt": {"name": "aicp-lab-tool", "state": "absent"}}),
    ],
    "mount": [
        ("create", 2, {"mount": {"path": "/mnt/aicp-cycle", "src": "tmpfs", "fstype": "tmpfs",
                                 "opts": "size=1m", "state": "mounted"}}),
        ("again", 0, {"mount": {"path": "/mnt/aicp-cycle", "src": "tmpfs", "fstype": "tmpfs",
                                "opts": "size=1m", "state": "mounted"}}),
        ("different", 2, {"mount": {"path": "/mnt/aicp-cycle", "src": "tmpfs", "fstype": "tmpfs",
                                    "opts": "size=2m", "state": "present"}}),
        ("remove", 2, {"mount": {"path": "/mnt/aicp-cycle", "state": "absent"}}),
        ("remove again", 0, {"mount": {"path": "/mnt/aicp-cycle", "state": "absent"}}),
    ],
    "fetch": [
        ("create", 2, {"fetch": {"src": "/etc/hostname", "dest": "{{ fetch_dir }}/"}}),
        ("again", 0, {"fetch": {"src": "/etc/hostname", "dest": "{{ fetch_dir }}/"}}),
        ("different", 2, {"fetch": {"src": "/etc/os-release", "dest": "{{ fetch_dir }}/"}}),
        ("remove", 2, {"file": {"path": "{{ fetch_dir }}", "state": "absent"}, "_host": "localhost"}),
        ("remove again", 0, {"file": {"path": "{{ fetch_dir }}", "state": "absent"}, "_host": "localhost"}),
    ],
}


UNIT = "[Unit]\nDescription=aicp cycle test\n[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n"

# Tasks that make what a case needs before it starts (changed_when: false).
SETUP = {
    "service": [{"copy": {"dest": "/etc/systemd/system/aicp-cycle.service", "content": UNIT}}],
    "systemd": [{"copy": {"dest": "/etc/systemd/system/aicp-cycle2.service", "content": UNIT}}],
}


def statuses(report):
    """task name -> {host: status} from a --json report."""
    out = {}
    for play in report.get("plays", []):
        for task in play.get("tasks", []):
            hosts = {}
            for h, entry in task.get("hosts", {}).items():
                if isinstance(entry, list):
                    hosts[h] = [e["status"] for e in entry]
                else:
                    hosts[h] = entry["status"]
            out[task["name"]] = hosts
    return out


def run(aicp, inv, playbook, workdir, check):
    report = os.path.join(workdir, "report.json")
    if os.path.exists(report):
        os.unlink(report)
    cmd = [aicp, "run", playbook, "-i", inv, "--json", report, "-e", "fetch_dir=" + workdir + "/fetched"]
    if check:
        cmd.append("--check")
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    rep = {}
    if os.path.exists(report):
        with open(report) as f:
            rep = json.load(f)
    return p.returncode, p.stdout, rep


def main():
    aicp, inv, host, workdir = sys.argv[1:5]
    failures = 0
    with open(os.path.join(workdir, "cycle.j2"), "w") as f:
        f.write("# managed by aicp\nvalue = {{ v }}\nhost = {{ inventory_hostname }}\n")
    for case in sys.argv[5:]:
        for label, expected, task in CASES[case]:
            task = dict(task)
            task["name"] = case + " " + label
            target = task.pop("_host", host)
            tasks = [task]
            if target != "localhost":
                setup = [{"name": "workdir", "file": {"path": T, "state": "directory"}}]
                for n, extra in enumerate(SETUP.get(case, [])):
                    setup.append(dict(extra, name="setup %d" % n))
                for x in setup:
                    x["changed_when"] = False
                tasks[:0] = setup
            play = [{"hosts": target, "gather_facts": False, "tasks": tasks}]
            pb = os.path.join(workdir, "cycle.yml")
            with open(pb, "w") as f:
                json.dump(play, f, indent=1)
            crc, cout, crep = run(aicp, inv, pb, workdir, True)
            rc, out, rep = run(aicp, inv, pb, workdir, False)
            vrc, vout, _ = run(aicp, inv, pb, workdir, True)
            problems = []
            if rc != expected:
                problems.append("exit %d, expected %d" % (rc, expected))
            if crc != rc:
                problems.append("--check exited %d but the real run %d" % (crc, rc))
            if statuses(crep).get(task["name"]) != statuses(rep).get(task["name"]):
                problems.append("--check predicted %s, the run did %s" % (
                    statuses(crep).get(task["name"]), statuses(rep).get(task["name"])))
            if vrc != 0:
                problems.append("a --check after the run still sees changes (exit %d)" % vrc)
            if problems:
                failures += 1
                print("FAIL %s: %s" % (task["name"], "; ".join(problems)))
                print("---- check run\n" + cout + "---- real run\n" + out + "---- verify run\n" + vout)
            else:
                print("ok   %s (exit %d)" % (task["name"], rc))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

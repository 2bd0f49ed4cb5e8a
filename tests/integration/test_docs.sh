#!/bin/sh
# Every module has a page in docs/modules/ that documents every argument of
# its table (and no argument it doesn't have), and the page's example task
# list runs on a lab host.
set -u
: "${top_srcdir:?}" "${AICP:?}"
fail=0
modules=$("$AICP" modules | awk '{print $1}')
[ -n "$modules" ] || { echo "FAIL: aicp modules lists nothing"; exit 1; }
for m in $modules; do
    page="$top_srcdir/docs/modules/$m.md"
    if [ ! -f "$page" ]; then echo "FAIL $m: no docs/modules/$m.md"; fail=1; continue; fi
    args=$("$AICP" modules "$m" | sed -n 's/^[-=] \([A-Za-z_][A-Za-z0-9_]*\).*/\1/p')
    for a in $args; do
        grep -q "^| *\`\{0,1\}$a\`\{0,1\} *|" "$page" || { echo "FAIL $m: argument '$a' is not documented in $page"; fail=1; }
    done
    # Rows of the page's argument table must be real arguments.
    documented=$(awk '/^\| *[Nn]ame *\|/{t=1; next} t && /^\|/{print} t && !/^\|/{t=0}' "$page" \
        | sed -n 's/^| *`\{0,1\}\([A-Za-z_][A-Za-z0-9_]*\)`\{0,1\} *|.*/\1/p')
    for d in $documented; do
        printf '%s\n' $args | grep -qx "$d" || { echo "FAIL $m: $page documents '$d', which the module does not take"; fail=1; }
    done
    grep -q '```yaml' "$page" || { echo "FAIL $m: no example"; fail=1; }
done
[ $fail -eq 0 ] && echo "ok   every module and argument is documented"

# The examples run: on a lab host, where writing /etc is harmless, or, for
# the Kubernetes modules, from the jump host against the fake API server.
. "$top_srcdir/tests/integration/lib.sh"
need_lab
lab_up 1
kube_fake_up --crds trident,kubeflow,snapshot --controller
ontap_fake_up
printf 'localhost ansible_connection=local\n' > "$WORK/local.ini"
# helm_release's example runs the helm stand-in on the jump host.
PATH="$top_srcdir/tests/lab/helm:$PATH" AICP_HELM_STATE="$WORK/helm-state"
export PATH AICP_HELM_STATE
for m in $modules; do
    page="$top_srcdir/docs/modules/$m.md"
    [ -f "$page" ] || continue
    awk '/^```yaml/{f=1; next} /^```/{if (f) exit; f=0} f' "$page" > "$WORK/example.tasks"
    if "$AICP" modules "$m" | grep -q 'Kubernetes API\|ONTAP REST API'; then
        hosts=localhost inv="$WORK/local.ini" facts=false
    else
        hosts=node01 inv="$LAB/inventory.ini" facts=true
    fi
    {
        echo "- hosts: $hosts"
        echo "  gather_facts: $facts"
        echo "  tasks:"
        sed 's/^/    /' "$WORK/example.tasks"
    } > "$WORK/example.yml"
    out=$("$AICP" run "$WORK/example.yml" -i "$inv" --kubeconfig "$KCFG" -e "@$OVARS" 2>&1)
    rc=$?
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 2 ]; then
        echo "FAIL $m: the example in docs/modules/$m.md exits $rc"; echo "$out" | tail -n 20; fail=1
    else
        echo "ok   $m example (exit $rc)"
    fi
done
exit $fail

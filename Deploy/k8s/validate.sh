#!/usr/bin/env bash
# Validates the kustomize base in Deploy/k8s, offline but for PyPI:
#   1. renders it with `kubectl kustomize` (kubectl's built-in kustomize; no cluster needed);
#   2. validates every rendered object against the Kubernetes OpenAPI schemas bundled in
#      kubernetes-validate (PyPI), strictly (unknown fields are errors), for Kubernetes 1.32
#      or, if that is not bundled, the newest version it has;
#   3. scans the rendered objects with checkov (PyPI, --framework kubernetes, nothing
#      downloaded from its vendor's platform). Checks that do not apply are suppressed in the
#      manifests themselves (`checkov.io/skipN` annotations, each with its reason), so they show
#      up as skipped, with the reason, rather than vanish;
#   4. `kubectl apply --dry-run=client -k` only when a cluster answers: even a client-side dry
#      run needs the API server's discovery to map kinds to resources, so without a cluster it
#      is skipped (and says so).
# Exits non-zero when rendering fails, when any object fails schema validation or has no
# schema, or when checkov reports a failed check.
#
# Usage: Deploy/k8s/validate.sh            (from anywhere)
# The tools go into a virtualenv under ${XDG_CACHE_HOME:-~/.cache}/rootcauses/ (reused on
# later runs); set ROOTCAUSES_K8S_VENV to put it elsewhere. Versions are pinned below.
set -euo pipefail

KUBERNETES_VALIDATE_VERSION="${KUBERNETES_VALIDATE_VERSION:-1.37.0}"
CHECKOV_VERSION="${CHECKOV_VERSION:-3.3.30}"
WANTED_KUBERNETES="1.32"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
kubectl="${KUBECTL:-kubectl}"
python="${PYTHON:-python3}"
venv="${ROOTCAUSES_K8S_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/rootcauses/k8s-validate-kv${KUBERNETES_VALIDATE_VERSION}-checkov${CHECKOV_VERSION}}"

work="$(mktemp -d "${TMPDIR:-/tmp}/rootcauses-k8s-validate.XXXXXX")"
trap 'rm -rf "$work"' EXIT

section() { printf '\n== %s\n' "$*"; }

# --- tools -------------------------------------------------------------------------------
if [[ ! -x "$venv/bin/checkov" || ! -x "$venv/bin/kubernetes-validate" ]]; then
    section "Installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION and checkov $CHECKOV_VERSION into $venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "checkov==$CHECKOV_VERSION"
fi
kubectl_version="$("$kubectl" version --client 2>/dev/null | sed -n 's/^Client Version: //p')"
kustomize_version="$("$kubectl" version --client 2>/dev/null | sed -n 's/^Kustomize Version: //p')"
kv_version="$("$venv/bin/kubernetes-validate" --version)"
checkov_version="$("$venv/bin/checkov" --version)"

# --- 1. render ---------------------------------------------------------------------------
section "Rendering: kubectl kustomize $here (kubectl $kubectl_version, kustomize $kustomize_version)"
rendered="$work/rendered.yaml"
"$kubectl" kustomize "$here" > "$rendered"
objects="$(grep -c '^kind: ' "$rendered" || true)"
echo "$objects objects:"
grep '^kind: ' "$rendered" | sed 's/^kind: //' | sort | uniq -c

# --- 2. schemas --------------------------------------------------------------------------
# The bundled schema versions, oldest first (directories v1.NN.0-local[-strict]).
bundled="$("$venv/bin/python" -c 'import kubernetes_validate.utils as u; print(" ".join(dict.fromkeys(u.all_versions())))')"
schema_version=""
for v in $bundled; do
    [[ "${v%.*}" == "$WANTED_KUBERNETES" ]] && schema_version="$v"
done
if [[ -z "$schema_version" ]]; then
    schema_version="$("$venv/bin/python" -c 'import kubernetes_validate.utils as u; print(u.latest_version())')"
fi
section "Schemas: kubernetes-validate $kv_version --strict -k $schema_version (bundled: ${bundled// /, })"
schema_rc=0
"$venv/bin/kubernetes-validate" --strict -k "$schema_version" "$rendered" > "$work/schema.txt" 2>&1 || schema_rc=$?
sed "s#$rendered#rendered.yaml#g" "$work/schema.txt"
schema_passed="$(grep -c '^INFO .* passed for resource' "$work/schema.txt" || true)"
schema_errors="$(grep -c -E '^(ERROR|FATAL)' "$work/schema.txt" || true)"
schema_unknown="$(grep -c '^WARN' "$work/schema.txt" || true)"   # no schema for a kind: not validated
schema_ok=yes
if [[ $schema_rc -ne 0 || $schema_errors -ne 0 || $schema_unknown -ne 0 || $schema_passed -ne $objects ]]; then
    schema_ok=no
fi

# --- 3. checkov --------------------------------------------------------------------------
section "checkov $checkov_version --framework kubernetes"
checkov_rc=0
# --skip-download: use only the checks shipped in the package (no network beyond PyPI here).
(cd "$work" && "$venv/bin/checkov" -f rendered.yaml --framework kubernetes --skip-download \
    -o json > checkov.json 2> checkov.stderr) || checkov_rc=$?
checkov_summary="$("$venv/bin/python" - "$work/checkov.json" <<'PY'
import json, sys
with open(sys.argv[1]) as f:
    data = json.load(f)
reports = data if isinstance(data, list) else [data]
passed = failed = skipped = errors = 0
for report in reports:
    s = report["summary"]
    passed += s["passed"]; failed += s["failed"]; skipped += s["skipped"]; errors += s["parsing_errors"]
    for c in report["results"].get("failed_checks", []):
        print(f"FAILED  {c['check_id']} {c['resource']}: {c['check_name']}", file=sys.stderr)
    for c in report["results"].get("skipped_checks", []):
        reason = (c.get("check_result") or {}).get("suppress_comment", "")
        print(f"SKIPPED {c['check_id']} {c['resource']}: {reason}", file=sys.stderr)
distinct = len({c["check_id"] for r in reports for c in r["results"].get("passed_checks", [])})
print(f"{passed} {failed} {skipped} {errors} {distinct}")
PY
)" || { cat "$work/checkov.stderr" >&2; echo "checkov produced no readable report" >&2; exit 1; }
read -r ck_passed ck_failed ck_skipped ck_errors ck_distinct <<< "$checkov_summary"
echo "passed $ck_passed (of $ck_distinct distinct checks), failed $ck_failed, skipped $ck_skipped, parsing errors $ck_errors"
checkov_ok=yes
if [[ $ck_failed -ne 0 || $ck_errors -ne 0 ]]; then checkov_ok=no; fi

# --- 4. kubectl dry run ------------------------------------------------------------------
section "kubectl apply --dry-run=client"
dry_run="skipped (no cluster reachable: kubectl needs the API server's discovery even for a client-side dry run)"
if "$kubectl" version --request-timeout=5s > /dev/null 2>&1; then
    if "$kubectl" apply --dry-run=client -k "$here" > "$work/dry-run.txt" 2>&1; then
        dry_run="passed"
    else
        dry_run="FAILED"
    fi
    cat "$work/dry-run.txt"
fi
echo "$dry_run"

# --- summary -----------------------------------------------------------------------------
section "Summary"
echo "render:   kubectl $kubectl_version (kustomize $kustomize_version): $objects objects"
echo "schemas:  kubernetes-validate $kv_version, Kubernetes $schema_version, strict:" \
     "$schema_passed passed, $schema_errors failed, $schema_unknown without a schema -> $([[ $schema_ok == yes ]] && echo OK || echo FAILED)"
echo "checkov:  $checkov_version: $ck_passed passed, $ck_failed failed, $ck_skipped skipped (suppressed with a reason in the manifests) -> $([[ $checkov_ok == yes ]] && echo OK || echo FAILED)"
echo "dry run:  $dry_run"

status=0
[[ $schema_ok == yes ]] || status=1
[[ $checkov_ok == yes ]] || status=1
[[ $dry_run != FAILED ]] || status=1
# checkov exits 1 when a check failed; anything else is checkov itself going wrong.
if [[ $checkov_rc -ne 0 && $checkov_rc -ne 1 ]]; then
    echo "checkov exited $checkov_rc:" >&2; cat "$work/checkov.stderr" >&2; status=1
fi
exit $status

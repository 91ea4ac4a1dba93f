#!/usr/bin/env bash
# Does the CI workflow's gate command pass unchanged code and fail planted bugs?
#
#   dev/check_ci_gate.sh [ENTRY]          (default smoke_i3d_tiny_video; a few minutes on 2 cores)
#
# Builds run folders the way the workflow's smoke-cpu job does (the suites' quick pass:
# test_accuracy + test_bench, which write the records the gate reads) from copies of the
# committed code (`git archive HEAD` into a temp folder, PYTHONPATH pointed at each copy):
#   baseline    the code as committed
#   unchanged   the code as committed, measured again
#   slowdown    Recognizer3D.forward stretched to 1.5x its own time (busy-wait)
#   constant    I3DHead.forward returns its bias for every video (constant scores)
# then runs the workflow's gate command on each candidate against the baseline:
#   i3dbench gate --records <candidate run> --baseline <baseline run> --zoo zoo/smoke.yaml
# Expected gate exits: unchanged 0, slowdown 1, constant 1 (the suites' own exit on each copy is
# shown too). Exit status: 0 when all are as expected,
# 1 when not, 3 when a bug could not be planted (the patched code moved: update the patch) or
# the gate command does not start.
# An existing PYTHONPATH stays on the path after the copy (the copy's i3dbench wins); extra pytest
# options go through PYTEST_ADDOPTS. PYTHON names the interpreter (default: python).
# Timings on a machine shared with other work are noisy: an unexpected exit on `unchanged`
# is worth a rerun on a quiet machine before it is believed.
set -uo pipefail

entry=${1:-smoke_i3d_tiny_video}
python=${PYTHON:-python}
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel) || exit 3
tmp=$(mktemp -d)
echo "check_ci_gate: $entry, copies and run folders in $tmp" >&2

copy() {  # $1: name of the copy
    mkdir -p "$tmp/$1" && git -C "$repo" archive HEAD | tar -x -C "$tmp/$1"
}

plant_slowdown() {
    patch -s -p1 -d "$tmp/slowdown" <<'EOF'
--- a/i3dbench/models/recognizer.py
+++ b/i3dbench/models/recognizer.py
@@ -33,7 +33,14 @@
                 f"expected clips shaped N x 3 x T x H x W, got {tuple(x.shape)}; "
                 "flatten views into the batch dimension first"
             )
-        return self.cls_head(self.backbone(x))
+        import time  # planted by dev/check_ci_gate.sh: a 1.5x slower forward
+
+        t0 = time.perf_counter()
+        out = self.cls_head(self.backbone(x))
+        end = t0 + 1.5 * (time.perf_counter() - t0)
+        while time.perf_counter() < end:
+            pass
+        return out
 
 
 def build_i3d(arch: Architecture) -> Recognizer3D:
EOF
}

plant_constant_head() {  # shared with dev/check_planted_bugs.sh
    patch -s -p1 -d "$tmp/constant" < "$repo/dev/planted/constant_head.patch"
}

measure() {  # $1: copy; its run folder is $tmp/runs/$1
    (cd "$tmp/$1" && PYTHONPATH="$tmp/$1${PYTHONPATH:+:$PYTHONPATH}" I3DBENCH_RUNS="$tmp/runs" "$python" -m pytest suites/ -q -p no:cacheprovider \
        --benchmark --quick --zoo zoo/smoke.yaml --only "$entry" -k "test_accuracy or test_bench" --out "$tmp/runs/$1")
}

gate() {  # $1: copy (its code runs the gate, as the PR's code does in CI)
    (cd "$tmp/$1" && PYTHONPATH="$tmp/$1${PYTHONPATH:+:$PYTHONPATH}" "$python" -m i3dbench.cli gate --records "$tmp/runs/$1" \
        --baseline "$tmp/runs/baseline" --zoo zoo/smoke.yaml)
}

for name in baseline unchanged slowdown constant; do copy "$name" || exit 3; done
# A gate command that cannot start would exit 1 like a regression: make sure it starts first.
(cd "$tmp/baseline" && PYTHONPATH="$tmp/baseline${PYTHONPATH:+:$PYTHONPATH}" "$python" -m i3dbench.cli gate --help \
    >/dev/null) || { echo "check_ci_gate: the gate command does not start" >&2; exit 3; }
plant_slowdown || { echo "check_ci_gate: could not plant the slowdown" >&2; exit 3; }
plant_constant_head || { echo "check_ci_gate: could not plant the constant head" >&2; exit 3; }

# The suites' own checks may fail on a planted bug (test_accuracy catches the constant head):
# the records are written before any assertion, so the gate still gets its input. Only the
# baseline must measure cleanly.
summary=""
for name in baseline unchanged slowdown constant; do
    start=$SECONDS
    measure "$name"
    rc=$?
    echo "check_ci_gate: measured $name in $((SECONDS - start)) s (suites exit $rc)" >&2
    summary+="  suites on $name: exit $rc"$'\n'
    [ "$name" != baseline ] || [ "$rc" -eq 0 ] || { echo "check_ci_gate: the baseline did not measure cleanly" >&2; exit 1; }
done

status=0
for pair in unchanged:0 slowdown:1 constant:1; do
    name=${pair%%:*} want=${pair##*:}
    echo "=== gate: $name vs baseline (expected exit $want)"
    gate "$name"
    got=$?
    summary+="  gate on $name: exit $got (expected $want)"$'\n'
    [ "$got" -eq "$want" ] || status=1
done
printf 'check_ci_gate:\n%s' "$summary" >&2
[ "$status" -eq 0 ] && rm -rf "$tmp" || echo "check_ci_gate: kept $tmp for inspection" >&2
exit "$status"

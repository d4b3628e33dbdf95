#!/usr/bin/env bash
# C-MAPSS FD001 as a real plant: dtwin trains on NASA's run-to-failure engines through the
# cmapss_fd001 profile, scores the test engines, and baseline.py sets its ROC-AUC beside
# scikit-learn's on the same rows, features and label. A benchmark, not a test (CI does not run it).
#
#   bash benchmarks/cmapss/run.sh            # from the repository root (or anywhere)
#
# Environment:
#   CMAPSS_DIR   NASA's files (train_FD001.txt, test_FD001.txt, RUL_FD001.txt);
#                default ../shared/datasets/cmapss from the repository root
#   DTWIN        the dtwin binary; default target/release/dtwin (cargo build --release -p dtwin)
#   HORIZON      cycles ahead a failure counts (default 30)
#   OUT          where the results go (default target/cmapss: results.json, scores, the model)
#   SEEDS        dtwin forests trained with other seeds for the spread (default 5; 0: none)
#   SKIP_DTWIN=1 only the scikit-learn side (no dtwin binary needed)
#   KEEP=1       keep the converted CSVs (in $OUT/work) instead of a temp dir
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
data=${CMAPSS_DIR:-../shared/datasets/cmapss}
dtwin=${DTWIN:-target/release/dtwin}
horizon=${HORIZON:-30}
out=${OUT:-target/cmapss}
profile=services/lib/profile/profiles/cmapss_fd001.toml

for f in train_FD001.txt test_FD001.txt RUL_FD001.txt; do
    if [[ ! -f $data/$f ]]; then
        cat >&2 <<EOF
run.sh: $data/$f is missing.
Download NASA's "Turbofan Engine Degradation Simulation Data Set" (C-MAPSS, Saxena et al. 2008,
public domain) from the NASA Prognostics Center of Excellence data repository
(https://www.nasa.gov/intelligent-systems-division/discovery-and-systems-health/pcoe/pcoe-data-set-repository/,
item "Turbofan Engine Degradation Simulation", CMAPSSData.zip; also on data.nasa.gov as "CMAPSS
Jet Engine Simulated Data"), unzip it, and either put
train_FD001.txt, test_FD001.txt and RUL_FD001.txt in $data or set CMAPSS_DIR to their folder.
EOF
        exit 1
    fi
done
if [[ -z ${SKIP_DTWIN:-} && ! -x $dtwin ]]; then
    echo "run.sh: no dtwin binary at $dtwin: run 'cargo build --release -p dtwin' (or set DTWIN, or SKIP_DTWIN=1)" >&2
    exit 1
fi

mkdir -p "$out"
if [[ -n ${KEEP:-} ]]; then
    work=$out/work
    mkdir -p "$work"
else
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
fi

# NASA's files: whitespace-separated, no header, a trailing space; 26 columns: unit, cycle, three
# settings, 21 sensors. The header names the sensors by the profile's keys, in NASA's order.
header="unit,cycle,setting1,setting2,setting3,T2,T24,T30,T50,P2,P15,P30,Nf,Nc,epr,Ps30,phi,NRf,NRc,BPR,farB,htBleed,Nf_dmd,PCNfR_dmd,W31,W32"
for part in train test; do
    awk -v header="$header" '
        BEGIN { OFS = ","; print header }
        NF == 0 { next }
        NF != 26 { printf "line %d has %d fields, not 26\n", NR, NF > "/dev/stderr"; exit 1 }
        { $1 = $1; print }
    ' "$data/${part}_FD001.txt" >"$work/${part}_FD001.csv"
done
# The failures: each training engine fails at its last cycle.
awk -F, 'NR > 1 { last[$1] = $2 } END { print "unit,cycle,label"; for (u in last) print u "," last[u] ",failure" }' \
    "$work/train_FD001.csv" | { read -r h; echo "$h"; sort -t, -k1,1n; } >"$work/events.csv"
echo "converted: $(($(wc -l <"$work/train_FD001.csv") - 1)) training rows, $(($(wc -l <"$work/test_FD001.csv") - 1)) test rows, $(($(wc -l <"$work/events.csv") - 1)) failures"

extra=$work/extra.json
echo '{}' >"$extra"
ours=()
if [[ -z ${SKIP_DTWIN:-} ]]; then
    "$dtwin" profile check "$profile"
    train_cmd=("$dtwin" train "$work/train_FD001.csv" --profile "$profile" --id-column unit --time-column cycle
        --events "$work/events.csv" --event-label-column label --horizon "$horizon" --out "$out/model.json" --json)
    predict_cmd=("$dtwin" predict "$out/model.json" "$work/test_FD001.csv" --out "$out/scores.csv"
        --profile "$profile" --id-column unit --time-column cycle)
    echo "+ ${train_cmd[*]}"
    start=$(date +%s%N)
    "${train_cmd[@]}" >"$out/train.json"
    train_ms=$((($(date +%s%N) - start) / 1000000))
    echo "+ ${predict_cmd[*]}"
    "${predict_cmd[@]}"
    # Each test engine's last cycle, with its score. predict writes machine_id, seq, ts,
    # probability, label (the alarm at the model's threshold), cold, failure; the columns are found
    # by name (unit/cycle/alarm are accepted too).
    awk -F, -v OFS=, '
        NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i
                  id = ("machine_id" in col) ? col["machine_id"] : col["unit"]
                  t = ("ts" in col) ? col["ts"] : col["cycle"]
                  a = ("alarm" in col) ? col["alarm"] : col["label"]
                  if (!id || !t || !("probability" in col)) {
                      print "scores.csv lacks machine_id, ts or probability: " $0 > "/dev/stderr"; exit 1 }
                  next }
        { u = $id; c = $t + 0
          if (!(u in best) || c >= best[u]) { best[u] = c; p[u] = $col["probability"]; al[u] = a ? $a : "" } }
        END { print "unit,cycle,probability,alarm"; for (u in best) print u, best[u], p[u], al[u] }
    ' "$out/scores.csv" | { read -r h; echo "$h"; sort -t, -k1,1n; } >"$out/last_cycle_scores.csv"
    ours=(--ours "$out/last_cycle_scores.csv" --ours-all "$out/scores.csv" --model "$out/model.json")
    # The spread over forest seeds (dtwin's default is 42), as scikit-learn's rows show theirs.
    if ((${SEEDS:-5} > 0)); then
        ours+=(--ours-seeds)
        for seed in $(seq 1 "${SEEDS:-5}"); do
            "$dtwin" train "$work/train_FD001.csv" --profile "$profile" --id-column unit --time-column cycle \
                --events "$work/events.csv" --event-label-column label --horizon "$horizon" \
                --seed "$seed" --out "$work/model_$seed.json" --json >/dev/null 2>&1
            "$dtwin" predict "$work/model_$seed.json" "$work/test_FD001.csv" --out "$work/scores_$seed.csv" 2>/dev/null
            ours+=("$work/scores_$seed.csv")
        done
    fi
    python3 - "$extra" "$out/train.json" "$train_ms" "${train_cmd[*]}" "${predict_cmd[*]}" <<'EOF'
import json, sys
extra, train_json, ms, train_cmd, predict_cmd = sys.argv[1:]
try:
    train = json.load(open(train_json))
except ValueError:
    train = open(train_json).read()
json.dump({"dtwin_train": train, "dtwin_train_seconds": int(ms) / 1000,
           "dtwin_commands": [train_cmd, predict_cmd]}, open(extra, "w"))
EOF
fi

python3 "$here/baseline.py" --train "$work/train_FD001.csv" --test "$work/test_FD001.csv" \
    --rul "$data/RUL_FD001.txt" --profile "$profile" --horizon "$horizon" \
    ${ours[@]+"${ours[@]}"} --extra "$extra" --out "$out/results.json"

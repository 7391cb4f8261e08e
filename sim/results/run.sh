#!/bin/sh
# The runs of sim/RESULTS.md: 960 nodes (48 leaves x 20, 4 spines), budgets
# 512 and 4096, 1 / 10 / 100 / 1,000 chunk puts per second per node, 500
# updates/s per switch. Windows are short and shrink as the rate grows (the
# simulated events grow with it; this was run with a deadline): each run has
# as much load before its window (--load-warmup-s) as in it.
set -e
BIN=${BIN:-target/release/subcast-sim}
OUT=${OUT:-sim/results}
run_budget() {
  b=$1
  "$BIN" --rate 1    --budget "$b" --seconds 1    --load-warmup-s 1    --json > "$OUT/r1-b$b.json"
  "$BIN" --rate 10   --budget "$b" --seconds 0.5  --load-warmup-s 0.5  --json > "$OUT/r10-b$b.json"
  "$BIN" --rate 100  --budget "$b" --seconds 0.1  --load-warmup-s 0.1  --json > "$OUT/r100-b$b.json"
  "$BIN" --rate 1000 --budget "$b" --seconds 0.01 --load-warmup-s 0.01 --json > "$OUT/r1000-b$b.json"
}
run_budget 512 & run_budget 4096 & wait
"$BIN" --rate 0.1 --budget 4096 --seconds 4 --load-warmup-s 4 --json > "$OUT/r0.1-b4096.json"
"$BIN" --chart "$OUT/chart.svg" --chart-from "$OUT"/r0.1-b4096.json \
  "$OUT"/r1-b512.json "$OUT"/r10-b512.json "$OUT"/r100-b512.json "$OUT"/r1000-b512.json \
  "$OUT"/r1-b4096.json "$OUT"/r10-b4096.json "$OUT"/r100-b4096.json "$OUT"/r1000-b4096.json

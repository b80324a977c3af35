#!/usr/bin/env bash
# Rebuild the shipped models' corpus (v8) on a clean machine, after `./setup --train`:
# the four neural vocoders with the pinned step counts of docs/corpus.md ("Reproduce the weights"), two at a time
# on the two cores, then the corpus build. About 45 minutes on an Intel Xeon, where the result is the pinned
# build (manifest sha256 dc7fedeebd43bca3…); other CPU vendors round torch's kernels differently and get another
# draw of the four vocoder families (docs/corpus.md, "The pin is not enough across CPU vendors").
#
# Usage: scripts/reproduce_corpus_v8.sh [OUT_DIR]   (default data/corpus_v8; logs in OUT_DIR.logs/)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-data/corpus_v8}"
logs="${out%/}.logs"
mkdir -p "$logs"
cg=.venv/bin/callguard
[ -x "$cg" ] || { echo "no $cg: run ./setup --train first" >&2; exit 2; }

vocoder() {  # family, schedule steps, stop after
  echo "$(date -u +%T) vocoder $1: training (log $logs/vocoder_$1.log)"
  OMP_NUM_THREADS=1 nice -n 10 "$cg" corpus train-vocoders --family "$1" --steps "$2" --stop-after "$3" \
    --max-minutes 999 >"$logs/vocoder_$1.log" 2>&1
  echo "$(date -u +%T) vocoder $1: done"
}

# hifigan is the longest (~15 min); the other three run one after another beside it
vocoder hifigan 4000 3801 &
hifigan=$!
{ vocoder nsf 2500 887 && vocoder mbmelgan 4000 3328 && vocoder wavernn 2000 944; } &
rest=$!
status=0
wait "$hifigan" || status=$?
wait "$rest" || status=$?
if [ "$status" -ne 0 ]; then
  echo "a vocoder failed (exit $status); see $logs/" >&2
  exit "$status"
fi

echo "$(date -u +%T) corpus build into $out (log $logs/build.log)"
OMP_NUM_THREADS=1 nice -n 5 "$cg" corpus build --size full --seed 1 --out "$out" >"$logs/build.log" 2>&1
echo "$(date -u +%T) corpus built"
sha256sum "$out/manifest.csv"

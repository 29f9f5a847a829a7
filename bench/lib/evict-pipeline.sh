#!/bin/bash
# The baseline of figure 1: what a user would write instead of hum-reaper — follow the log,
# pick out evictions, pkill the evicted sid's process by its argv.
#
#   BENCH_LOG=<worker log> BENCH_OUT=<timings file> BENCH_SID_PREFIX=<run's sid prefix> bash evict-pipeline.sh
#
# Made as cheap as bash allows: the sid is cut out with parameter expansion (no sed/cut fork)
# and $EPOCHREALTIME (a builtin, no `date` fork) is read right before and right after pkill,
# whose SIGTERM goes out somewhere in between. Each kill appends "<t0> <t1> <log line>".
# The `case` is the benchmark's safety guard, not part of what a user writes: a line it could
# not cut would otherwise run `pkill -f "/s/"`, matching every hum child on the machine.
export LC_ALL=C
tail -n 0 -F -- "$BENCH_LOG" 2>/dev/null | grep --line-buffered -F evict.lru | while IFS= read -r line; do
  sid=${line##*=}
  sid=${sid#$'\e[0m'}
  case $sid in "$BENCH_SID_PREFIX"?*) ;; *) continue ;; esac
  t0=$EPOCHREALTIME
  pkill -f "/s/$sid"
  t1=$EPOCHREALTIME
  printf '%s %s %s\n' "$t0" "$t1" "$line" >> "$BENCH_OUT"
done

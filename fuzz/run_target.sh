#!/bin/sh
# run_target.sh TARGET SECONDS [RUNS]: replays fuzz/regressions/TARGET/*, then fuzzes TARGET
# from its seeds for SECONDS seconds, or, when RUNS is given, for exactly RUNS inputs with a
# fixed seed (repeatable: what `make test` uses, so CI cannot turn red by chance).  Exits
# non-zero on any crash, leak or invariant violation.
set -u
t=$1; secs=$2; runs_wanted=${3:-}
if [ -n "$runs_wanted" ]; then budget="-runs=$runs_wanted -seed=1"; else budget="-max_total_time=$secs"; fi
bin=build/$t
mkdir -p build/corpus/$t build/crashes
if [ -n "$(ls regressions/$t 2>/dev/null)" ]; then
  if ! $bin -runs=1 regressions/$t/* > build/$t.regressions.log 2>&1; then
    echo "$t: a regression input fails again:"; tail -n 40 build/$t.regressions.log; exit 1
  fi
  echo "$t: $(ls regressions/$t | wc -l) regression input(s) pass"
fi
if ! $bin $budget -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
     -print_final_stats=1 -artifact_prefix=build/crashes/$t- \
     build/corpus/$t build/seeds/$t > build/$t.log 2>&1; then
  echo "$t: FAILED (input saved under fuzz/build/crashes/; copy it to fuzz/regressions/$t/):"
  tail -n 40 build/$t.log; exit 1
fi
runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1 runs in \2 s/p' build/$t.log)
echo "$t: ok, $runs, corpus $(ls build/corpus/$t | wc -l) inputs"

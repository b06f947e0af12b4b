#!/bin/bash
# Replays from this tree and another must be byte-identical (a speed-up must not change a
# result): bench/replay_same.sh OTHER_TREE, e.g. after `git archive 60fdd8e | tar -x -C /tmp/base`.
# Streams: bench/small_windows.py's and bench/replay_streams.py's, at several windows, with and
# without a drift reference built from each stream's start. stdout is compared exactly, stderr
# with its log lines' timestamps left out. Exit status 1 on any difference.
set -u
here=$(cd "$(dirname "$0")/.." && pwd); other=${1:?usage: bench/replay_same.sh OTHER_TREE}
py=${PYTHON:-$here/.venv/bin/python}
d=$(mktemp -d); trap 'rm -rf "$d"' EXIT
"$py" "$here/bench/replay_streams.py" "$d"
(cd "$here/bench" && "$py" -c "import small_windows as s, pathlib; s.make_stream(pathlib.Path('$d'), 50000, 600)")
mv "$d/samples.ndjson" "$d/tools.samples.ndjson"; mv "$d/labels.ndjson" "$d/tools.labels.ndjson"
run() {  # tree stream window [reference]
  (cd "$1" && "$py" -m agent replay --samples "$d/$2.samples.ndjson" --labels "$d/$2.labels.ndjson" \
    --window "$3" ${4:+--reference "$4"} 2>&1 | grep -v '"timestamp"' | md5sum)
}
bad=0
for s in tools multi reg bin; do
  ref=""
  if [ "$s" != tools ]; then
    model=$(head -n 1 "$d/$s.samples.ndjson" | "$py" -c 'import json, sys; print(json.load(sys.stdin)["model"])')
    head -n 1500 "$d/$s.samples.ndjson" > "$d/$s.ref.ndjson"
    (cd "$here" && "$py" -m agent reference build --from "$d/$s.ref.ndjson" --model "$model" \
      --out "$d/$s.ref.json" > /dev/null 2>&1) && ref="$d/$s.ref.json"
  fi
  for w in 100n 1d 7d 3d/1d 500n/100n 7n 2h; do
    for r in "" $ref; do
      if [ "$(run "$here" $s $w $r)" = "$(run "$other" $s $w $r)" ]; then
        echo "same $s $w ${r:+with reference}"
      else
        echo "DIFF $s $w ${r:+with reference}"; bad=1
      fi
    done
  done
done
exit $bad

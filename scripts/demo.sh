#!/usr/bin/env bash
# The demo of the README: set up .venv, then replay the bundled endoscopy clip through the bundled default
# model. A subscriber prints the alerts it receives over ZeroMQ, and the display (`nero display`) shows them
# in a browser page while the clip plays; the run ends with the monitor's summary.
# What it leaves for you to look at goes to demo-output/ (audit trail, annotated video, HTML report).
set -euo pipefail
cd "$(dirname "$0")/.."
NERO_EXTRAS="${NERO_EXTRAS:-display}" source scripts/setup_env.sh

out=demo-output
mkdir -p "$out"
free_port() { .venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
endpoint="tcp://127.0.0.1:$(free_port)"

echo
echo "== nero-monitor demo: scripts/demo/clip.mp4 (75 s of Kvasir-SEG colonoscopy with laparoscopic,"
echo "   capsule and chest X-ray segments cut in) through configs/default.yaml, alerts on $endpoint"
echo

# The clip plays at its own 25 fps (--realtime), as a live feed would, so the latencies are the ones a display
# would see. The subscriber is a separate process, as a display would be; replay waits for its subscription so that it
# receives every frame, and the subscriber leaves 3 s after the last message. The subscriber's alert lines show
# the progress, so the replay draws no progress bar of its own over them (--no-progress).
# The display: a local web page that follows the monitor (DISPLAY_PORT=8080 ./scripts/demo.sh to choose its port).
.venv/bin/nero display "$endpoint" --port "${DISPLAY_PORT:-$(free_port)}" --title "nero-monitor demo" \
    > "$out/display.url" 2> "$out/display.log" &
display=$!
.venv/bin/nero subscribe "$endpoint" --jsonl "$out/received.jsonl" --timeout 3 &
subscriber=$!
trap 'kill $subscriber $display 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$out/display.url" ] && break; sleep 0.1; done
echo "== the display: open $(cat "$out/display.url") in a browser beside this terminal (it stops with the demo)"
echo

# Two subscribers (the printer and the display); the display also gets 5 preview pictures a second.
.venv/bin/nero replay scripts/demo/clip.mp4 --realtime --no-progress --publish "$endpoint" --wait-subscribers 2 \
    --preview-fps 5 --jsonl "$out/audit.jsonl" --annotate "$out/annotated.mp4" --report "$out/report" \
    --metrics-json "$out/metrics.json"
wait $subscriber
kill $display 2>/dev/null || true
trap - EXIT

echo
echo "How often each part of the clip was flagged (ground truth: scripts/demo/clip.truth.csv):"
.venv/bin/python scripts/segment_summary.py "$out/audit.jsonl" scripts/demo/clip.truth.csv
echo
echo "Look at: $out/report/report.html (score timeline, alert intervals, heatmaps),"
echo "         $out/annotated.mp4 (the clip with score and alert state drawn on), $out/audit.jsonl (every frame)."

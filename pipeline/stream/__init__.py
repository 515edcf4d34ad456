"""The streaming monitor: runner, queues, per-stream state, run report, latency figures and the bench."""

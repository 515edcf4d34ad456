"""`nero display` in a real browser: headless Chromium (Debian's chromium and chromium-driver) driven by
Selenium, against real monitors publishing on 127.0.0.1.

The page records every banner change with the browser's clock (`window.neroDisplay.changes`); the monitor's
audit holds when each alert_on and alert_off was published. Both clocks are this machine's, so their
difference is the delay a person in the room would see. Screenshots go to $NERO_SCREENSHOTS (default: the
test's temporary folder); docs/img/display.png is one of them.

Without a browser these tests skip and say so; under CI (`CI` set) they fail instead: .ci/run installs it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

REPO = Path(__file__).resolve().parents[3]
CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
BANNER_DELAY_S = 1.0      # the bound, from alert_on published to the banner changed


def nero(*arguments: object) -> list[str]:
    return [sys.executable, "-m", "pipeline", *map(str, arguments)]


def free_endpoint() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not (CHROMIUM.exists() and DRIVER.exists()):
        message = "no Chromium here: apt-get install chromium chromium-driver"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test, but found {message} (.ci/run installs it)")
        pytest.skip(f"browser test skipped: {message}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("NERO_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Display:
    """`nero display` in its own process, and the page open in the browser."""

    def __init__(self, browser, endpoints: list[str], *flags: str) -> None:
        self.process = subprocess.Popen(nero("display", *endpoints, "--port", 0, *flags), stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        self.url = self.process.stdout.readline().strip()
        assert self.url.startswith("http://127.0.0.1:"), self.process.communicate(timeout=10)
        self.browser = browser
        browser.get(self.url)

    def changes(self, since: float = 0.0) -> list[dict]:
        return [c for c in self.browser.execute_script("return window.neroDisplay.changes") if c["t"] >= since]

    def banners(self) -> list[str]:
        return self.browser.execute_script(
            "return [...document.querySelectorAll('.banner')].map((b) => b.dataset.state)")

    def wait_for(self, condition, what: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert time.monotonic() < deadline, f"the page never showed {what}: banners {self.banners()}"
            time.sleep(0.05)

    def close(self) -> str:
        self.process.send_signal(signal.SIGTERM)
        _, err = self.process.communicate(timeout=20)
        assert self.process.returncode == 0, err
        return err


def first_change(changes: list[dict], state: str, after: float) -> float:
    """When the banner first showed `state` at or after `after` (unix s, the browser's clock)."""
    times = [c["t"] for c in changes if c["state"] == state and c["t"] >= after]
    assert times, f"the banner never turned {state} after {after}: {changes}"
    return times[0] - after


def test_the_banner_follows_a_real_replay_within_a_second(browser, screenshots, alert_clip, monitor_config_file,
                                                        tmp_path):
    endpoint, audit = free_endpoint(), tmp_path / "audit.jsonl"
    display = Display(browser, [endpoint])
    display.wait_for(lambda: display.banners() == ["connecting"], "CONNECTING before the monitor runs")
    opened = time.time()
    replay = subprocess.Popen(nero("replay", alert_clip, "--realtime", "--config", monitor_config_file, "--publish",
                                   endpoint, "--jsonl", audit, "--wait-subscribers", 1, "--no-progress"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    display.wait_for(lambda: display.banners() == ["alert"], "OUT OF DISTRIBUTION", timeout_s=120)
    time.sleep(1.0)   # the chart and the nearest window's thumbnail too (the alert lasts 3 s)
    browser.save_screenshot(str(screenshots / "display-alert.png"))
    _, err = replay.communicate(timeout=120)
    assert replay.returncode == 0, err
    display.wait_for(lambda: display.banners() == ["nosignal"], "NO SIGNAL after the stream stopped")
    browser.save_screenshot(str(screenshots / "display-stopped.png"))
    display.close()

    events = [m for m in map(json.loads, audit.read_text().splitlines()) if m["type"] == "event"]
    alert_on = [e["t"] for e in events if e["event"] == "alert_on"]
    alert_off = [e["t"] for e in events if e["event"] == "alert_off"]
    stop = [e["t"] for e in events if e["event"] == "stop"]
    assert len(alert_on) == 1 and len(alert_off) == 1, events   # one alert: the chest X-ray segment
    changes = display.changes(since=opened)
    delays = {"alert_on": first_change(changes, "alert", alert_on[0]),
              "alert_off": first_change(changes, "ok", alert_off[0]),
              "stop": first_change(changes, "nosignal", stop[0])}
    (screenshots / "display-delays.json").write_text(json.dumps(delays, indent=2) + "\n")
    assert all(0.0 <= delay < BANNER_DELAY_S for delay in delays.values()), delays
    # ... and nothing else: in distribution before and after the alert, no flicker
    states = [c["state"] for c in changes if c["stream"] is not None]
    assert states == ["ok", "alert", "ok", "nosignal"], states


def test_a_killed_monitor_shows_no_signal(browser, screenshots, alert_clip, monitor_config_file):
    endpoint = free_endpoint()
    display = Display(browser, [endpoint], "--silence", 2)
    live = subprocess.Popen(nero("live", f"endo={alert_clip}", "--config", monitor_config_file, "--publish", endpoint),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        display.wait_for(lambda: display.banners() in (["ok"], ["alert"]), "the live stream", timeout_s=120)
    finally:
        live.kill()      # no stop event: only the heartbeats falling silent can tell
    killed = time.time()
    live.communicate(timeout=30)
    display.wait_for(lambda: display.banners() == ["nosignal"], "NO SIGNAL after the monitor died", timeout_s=10)
    browser.save_screenshot(str(screenshots / "display-killed.png"))
    delay = first_change(display.changes(since=killed), "nosignal", killed)
    assert delay < 2 + 1.5, delay      # --silence 2, plus the heartbeat period and the poll
    assert "NO SIGNAL" in browser.find_element("css selector", ".banner").text
    display.close()


def test_a_sequence_gap_shows_on_the_page(browser, alert_clip, monitor_config_file, tmp_path):
    """Real frame messages of a replay, published again with seq 30-39 left out: the page counts 10 missed."""
    audit = tmp_path / "audit.jsonl"
    subprocess.run(nero("replay", alert_clip, "--config", monitor_config_file, "--publish", "tcp://127.0.0.1:*",
                        "--jsonl", audit, "--no-progress"), check=True, capture_output=True, timeout=120,
                   env={**os.environ, "PYTHONPATH": str(REPO)})
    frames = [m for m in map(json.loads, audit.read_text().splitlines()) if m["type"] == "frame"][:60]
    endpoint = free_endpoint()
    context = zmq.Context()
    publisher = context.socket(zmq.XPUB)
    publisher.bind(endpoint)
    try:
        display = Display(browser, [endpoint])
        publisher.recv()     # the display's subscription: it is listening
        for message in frames[:30] + frames[40:]:
            message["t_publish"] = time.time()
            publisher.send_multipart([f"alert.{message['stream']}".encode(), json.dumps(message).encode()])
            time.sleep(0.01)
        display.wait_for(lambda: browser.execute_script(
            "return document.querySelector('.stats').dataset.gaps") == "10", "10 missed messages", timeout_s=10)
        assert "missed messages 10" in browser.find_element("css selector", ".stats").text
        display.close()
    finally:
        publisher.close(linger=0)
        context.term()

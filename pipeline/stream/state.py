"""What the publish side knows of each stream, and the messages it makes from that knowledge.

Per stream: the last `seq` published (+1 per frame message, from 0), the alerts raised, the state a display
shows (starting, running, reconnecting, stopped) and the source's frame rate. From these it builds every
frame, event and heartbeat message (pipeline/messages.py). No thread, no socket, no clock of its own: the
runner passes the time and sends what comes back, so all of this is tested without threads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline import messages
from pipeline.media.video import Frame
from pipeline.ood.alert import Decision
from stages.score import Scored

SOURCE_STATES = {"start": "running", "stop": "stopped", "reconnecting": "reconnecting"}


@dataclass
class StreamState:
    seq: int = -1            # of the stream's latest frame message; -1 before the first
    alerts: int = 0          # alerts switched on so far
    state: str = "starting"
    fps: float | None = None


class StreamStates:
    def __init__(self, names: list[str], detector: str, alert_threshold: float | None = None) -> None:
        self.streams = {name: StreamState() for name in names}
        self.detector = detector   # the name of the score every frame message carries
        self.alert_threshold = alert_threshold   # the operating point; None: the per-frame threshold

    def frame_message(self, frame: Frame, result: Scored, decision: Decision, threshold: float,
                      t_publish: float) -> dict[str, Any]:
        """The next frame message of the frame's stream (its seq is taken here)."""
        state = self.streams[frame.stream]
        state.seq += 1
        return messages.frame_message(
            stream=frame.stream, seq=state.seq, frame=frame.index, pts=frame.pts, t_capture=frame.t_capture,
            t_publish=t_publish, pred=result.pred, prob=result.prob, detector=self.detector, score=result.score,
            threshold=threshold, ood=decision.ood, reason=decision.reason, alert=decision.alert,
            explain=result.explain, alert_threshold=self.alert_threshold)

    def alert_event(self, frame_message: dict[str, Any], t: float) -> dict[str, Any]:
        """alert_on / alert_off for the frame whose message switched the alert; alert_on is counted."""
        stream, on = frame_message["stream"], frame_message["alert"]
        self.streams[stream].alerts += on
        return self.event(stream, "alert_on" if on else "alert_off", t, frame=frame_message["frame"],
                          pts=frame_message["pts"], reason=frame_message["reason"],
                          detector=frame_message["detector"], score=frame_message["score"],
                          threshold=frame_message["threshold"], alert_threshold=frame_message["alert_threshold"],
                          explain=frame_message["explain"])

    def source_event(self, stream: str, event: str, details: dict[str, Any], t: float) -> dict[str, Any]:
        """A source's start, stop, error or reconnecting, which also moves the stream's state."""
        state = self.streams[stream]
        state.state = SOURCE_STATES.get(event, state.state)
        if event == "start":
            state.fps = state.fps or details.get("fps")
        return self.event(stream, event, t, **details)

    def event(self, stream: str, event: str, t: float, **details: Any) -> dict[str, Any]:
        return messages.event_message(stream, event, self.streams[stream].seq, t, **details)

    def unfinished(self) -> list[str]:
        """Streams that started and have had no stop event (their source thread did not say goodbye)."""
        return [name for name, state in self.streams.items() if state.state not in ("stopped", "starting")]

    def stop_unfinished(self, t: float) -> list[dict[str, Any]]:
        return [self.source_event(name, "stop", {"reason": "stopped"}, t) for name in self.unfinished()]

    def heartbeat(self, t: float, uptime_s: float, drops: dict[str, int],
                  alert_on: Callable[[str], bool]) -> dict[str, Any]:
        streams = {name: {"state": state.state, "last_seq": state.seq, "frames": state.seq + 1,
                          "drops": drops.get(name, 0), "alert": alert_on(name)}
                   for name, state in self.streams.items()}
        return messages.heartbeat_message(t, uptime_s, streams)

    def source_fps(self) -> float:
        """The frame rate the running streams' sources deliver together (0 when none says)."""
        return sum(state.fps or 0.0 for state in self.streams.values() if state.state == "running")

    def frames(self) -> dict[str, int]:
        return {name: state.seq + 1 for name, state in self.streams.items()}

    def alerts(self) -> dict[str, int]:
        return {name: state.alerts for name, state in self.streams.items()}

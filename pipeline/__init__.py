"""nero-monitor: real-time out-of-distribution monitoring of endoscopy video with NERO."""

from pipeline.nero import NeroScorer, NeroTerms, relevance
from pipeline.subscriber import AlertSubscriber

__all__ = ["AlertSubscriber", "NeroScorer", "NeroTerms", "relevance"]

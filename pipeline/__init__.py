"""nero-monitor: real-time out-of-distribution monitoring of endoscopy video with NERO."""

from pipeline.nero import NeroScorer, NeroTerms, relevance

__all__ = ["NeroScorer", "NeroTerms", "relevance"]

"""Offline evaluation of OOD detectors: metrics, image sets, the feature cache, validation, video, reports."""

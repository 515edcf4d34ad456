"""Out-of-distribution maths: NERO, the centroid and neighbour indexes, the detectors and the alert rule."""

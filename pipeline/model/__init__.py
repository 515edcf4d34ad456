"""The classifier and what belongs to it: adapter, preprocessing, fitted artifact, bundle, pretrained weights."""

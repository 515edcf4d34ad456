"""Why a frame alerts: the per-frame `explain` field, LRP heatmaps, their rendering, figures and the report."""

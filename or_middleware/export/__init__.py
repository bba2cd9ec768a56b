"""Export: per-destination pipelines, privacy transforms and exporters."""

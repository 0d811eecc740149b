"""Data-quality monitoring: metrics per run and batch in the warehouse's `monitoring` schema, thresholds,
and Prefect events that the automations in deployments/automations/ turn into notifications."""

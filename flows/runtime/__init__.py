"""Runtime around the flow: worker processes, the Prefect runtime, warehouse slots, alerts, secrets."""

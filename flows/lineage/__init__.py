"""OpenLineage events of each run: what it read and wrote, with row counts (built by `flows.lineage.events`, emitted by `flows.run.openlineage`)."""

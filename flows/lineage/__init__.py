"""OpenLineage events of each run: what it read and wrote, with row counts (`flows.lineage.emit`)."""

"""The operations around runs: the daily and backfill flows, the models build, erasure and status."""

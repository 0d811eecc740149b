"""Landing: anonymised batches as Parquet files plus a manifest, in a folder or in S3."""

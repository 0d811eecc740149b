-- Snowflake: load a staged Parquet file by column name (FORCE: a retried load reloads, after its DELETE;
-- PURGE: the staged copy is removed once loaded, so no landed row outlives an erasure in the stage).
copy into {table}
from {staged_file}
file_format = (type = parquet)
match_by_column_name = case_insensitive
force = true
purge = true

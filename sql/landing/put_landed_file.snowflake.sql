-- Snowflake: upload one local file to the stage. PUT takes no bind parameters; the path and the stage
-- folder are produced by the adapter (a temporary file, the run id) and checked to be plain tokens.
put 'file://{local_path}' @{stage}/{stage_dir}/ auto_compress = false overwrite = true

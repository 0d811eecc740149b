insert into landing.schema_change_history (version, script, checksum, applied_at)
values (:version, :script, :checksum, :applied_at)

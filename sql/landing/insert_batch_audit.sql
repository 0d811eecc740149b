insert into landing.batches (
    run_id, batch_id, batch_index, status, persons, quarantined, extracted, duplicates,
    landed_file, loaded_at, key_fingerprint, generation_id, requested
)
values (
    :run_id, :batch_id, :batch_index, 'loaded', :persons, :quarantined, :extracted, :duplicates,
    :landed_file, :loaded_at, :key_fingerprint, :generation_id, :requested
)

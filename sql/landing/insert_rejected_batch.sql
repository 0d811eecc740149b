-- A batch the source did not deliver completely: rejected before landing, with the reason (no values).
insert into landing.batches (
    run_id, batch_id, batch_index, status, persons, quarantined, extracted, duplicates,
    loaded_at, validated_at, key_fingerprint, generation_id, requested, rejection_reason
)
values (
    :run_id, :batch_id, :batch_index, 'rejected', 0, 0, 0, 0,
    :loaded_at, :loaded_at, :key_fingerprint, :generation_id, :requested, :rejection_reason
)

update landing.batches
set
    status = 'merged',
    merged_at = :merged_at
where run_id = :run_id and batch_id = :batch_id

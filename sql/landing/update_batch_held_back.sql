-- A batch that failed after loading stays in landing, visibly unpublished; a gate verdict is kept.
update landing.batches
set status = 'held_back'
where
    run_id = :run_id
    and batch_id = :batch_id
    and status in ('loaded', 'validated')

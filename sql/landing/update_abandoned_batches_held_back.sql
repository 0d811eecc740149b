-- A dead run's loaded batches stay in landing, visibly unpublished; this run publishes them again.
update landing.batches
set status = 'held_back'
where
    run_id <> :run_id
    and status in ('loaded', 'validated')

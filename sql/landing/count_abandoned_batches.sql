-- Batches another run loaded and never merged or rejected: that run died (this one holds the only slot).
select count(*) as abandoned
from landing.batches
where
    run_id <> :run_id
    and status in ('loaded', 'validated')

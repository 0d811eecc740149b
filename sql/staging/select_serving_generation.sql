-- The generation the published layers show: its key fingerprint and reference date.
select
    generation_id,
    key_fingerprint,
    reference_date
from staging.generations
where status = 'serving'

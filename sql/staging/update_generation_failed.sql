update staging.generations
set status = 'failed'
where generation_id = :generation_id and status = 'building'

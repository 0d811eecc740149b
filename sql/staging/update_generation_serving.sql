update staging.generations
set
    status = 'serving',
    switched_at = :switched_at
where generation_id = :generation_id

update staging.generations
set status = 'retired'
where status = 'serving'

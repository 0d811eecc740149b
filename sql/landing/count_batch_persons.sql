select count(*) as persons
from landing.persons
where run_id = :run_id and batch_id = :batch_id

select count(*) as persons
from staging.persons

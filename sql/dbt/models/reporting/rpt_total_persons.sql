-- Every published person, counted before suppression (an exact figure).
select count(*) as total_persons
from {{ ref('trf_persons') }}

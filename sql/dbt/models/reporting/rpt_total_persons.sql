-- Every published person, counted before suppression (an exact figure of analytics.agg_person_totals).
select persons as total_persons
from {{ ref('agg_person_totals') }}

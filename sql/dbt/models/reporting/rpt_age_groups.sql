-- Persons per age group (exact counts); a group of fewer than k persons is withheld (a small cell).
select
    age_group,
    age_min,
    persons
from {{ ref('agg_persons_by_age_group') }}

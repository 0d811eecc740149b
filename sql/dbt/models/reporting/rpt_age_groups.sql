-- Persons per age group (exact counts); a group of fewer than k persons is withheld (a small cell).
with

persons as (
    select * from {{ ref('trf_persons') }}
),

age_groups as (
    select * from {{ ref('dim_age_group') }}
),

per_group as (
    select
        age_groups.age_group,
        min(age_groups.age_min) as age_min,
        count(*) as persons
    from persons
    inner join age_groups on persons.age_group = age_groups.age_group
    group by age_groups.age_group
),

final as (
    select * from per_group
    where persons >= {{ var('k_anonymity') }}
)

select * from final

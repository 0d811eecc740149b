-- Persons and Gmail users per age group (exact counts); a group of fewer than k persons is withheld, a
-- Gmail count under k is null.
{%- set k = var('k_anonymity') %}

with

persons as (
    select * from {{ ref('trf_persons') }}
),

age_groups as (
    select * from {{ ref('age_groups') }}
),

per_group as (
    select
        age_groups.age_group,
        min(age_groups.age_min) as age_min,
        min(age_groups.age_max) as age_max,
        count(*) as persons,
        sum(case when persons.is_gmail then 1 else 0 end) as gmail_users
    from persons
    inner join age_groups on persons.age_group = age_groups.age_group
    group by age_groups.age_group
),

final as (
    select
        age_group,
        age_min,
        age_max,
        cast(persons as bigint) as persons,
        cast(case when gmail_users >= {{ k }} then gmail_users end as bigint) as gmail_users
    from per_group
    where persons >= {{ k }}
)

select * from final

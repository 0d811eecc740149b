-- Gmail users older than 60 at the reference date: every age group starting above 60 (exact).
with

persons as (
    select * from {{ ref('trf_persons') }}
),

age_groups as (
    select * from {{ ref('dim_age_group') }}
),

final as (
    select count(*) as gmail_over_60
    from persons
    inner join age_groups on persons.age_group = age_groups.age_group
    where persons.is_gmail and age_groups.is_over_60
)

select * from final

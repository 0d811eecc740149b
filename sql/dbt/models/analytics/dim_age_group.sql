-- The age groups of the anonymisation policy, plus the '*' member of suppressed persons.
with

age_groups as (
    select * from {{ ref('age_groups') }}
),

final as (
    select
        age_group,
        age_min,
        age_max,
        age_min > 60 as is_over_60
    from age_groups
    union all
    select
        '*' as age_group,
        null as age_min,
        null as age_max,
        false as is_over_60
)

select * from final

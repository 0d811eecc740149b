-- One row per published person, with k-anonymous quasi-identifiers (keys into the dimensions).
with

protected as (
    select * from {{ ref('trf_persons_protected') }}
),

persons as (
    select * from {{ ref('trf_persons') }}
),

final as (
    select
        -- ids
        protected.person_key,
        -- dimension keys (the quasi-identifiers, generalised or suppressed)
        protected.gender,
        protected.age_group,
        protected.country_key,
        protected.email_domain,
        -- attributes
        protected.protection,
        -- dates
        persons.age_reference_date
    from protected
    inner join persons on protected.person_key = persons.person_key
)

select * from final

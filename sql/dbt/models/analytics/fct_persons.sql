-- One row per published person, with k-anonymous quasi-identifiers (keys into the dimensions).
with

protected as (
    select * from {{ ref('trf_persons_protected') }}
),

final as (
    select
        -- ids
        person_key,
        -- dimension keys and the region (the quasi-identifiers, generalised or suppressed)
        gender,
        age_group,
        country_code,
        region,
        email_domain,
        -- attributes
        protection,
        -- dates
        age_reference_date
    from protected
)

select * from final

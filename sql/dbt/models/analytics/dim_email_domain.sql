-- Every published email domain value: a domain shared by at least k persons, 'other', or '*' if suppressed.
with

published as (
    select distinct email_domain from {{ ref('fct_persons') }}
),

final as (
    select
        email_domain,
        email_domain in {{ gmail_domains() }} as is_gmail,
        email_domain in ('other', '*') as is_generalised
    from published
)

select * from final

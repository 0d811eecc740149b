{#- Fails with one row per class of quasi-identifiers shared by fewer than k rows (suppressed rows, whose
    quasi-identifiers are all '*', match every class and are left out, as in ARX). -#}
{% test k_anonymous(model, quasi_identifiers, k=none) %}
{%- set k = k or var('k_anonymity') %}
with

classes as (
    select
        {{ quasi_identifiers | join(', ') }},
        count(*) as class_size
    from {{ model }}
    where not ({% for column in quasi_identifiers %}{{ column }} = '*'{% if not loop.last %} and {% endif %}{% endfor %})
    group by {{ quasi_identifiers | join(', ') }}
)

select * from classes
where class_size < {{ k }}
{% endtest %}

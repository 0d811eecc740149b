{#- Fails with every row of an aggregate whose group holds fewer than k persons (a small cell). -#}
{% test min_group_size(model, column_name, k=none) %}
{%- set k = k or var('k_anonymity') %}
select *
from {{ model }}
where {{ column_name }} < {{ k }}
{% endtest %}

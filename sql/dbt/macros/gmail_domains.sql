{#- The Gmail domains as a SQL list, from the one declaration in dbt_project.yml. -#}
{% macro gmail_domains() -%}
    ({% for domain in var('gmail_domains') %}'{{ domain }}'{% if not loop.last %}, {% endif %}{% endfor %})
{%- endmacro %}

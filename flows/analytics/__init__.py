"""The layers above staging: the dbt project in `sql/dbt` (transform -> analytics -> reporting), its builds.

dbt runs in a process of its own (`flows.analytics.dbt_process`); a run builds the models only when their
fingerprint differs from the one recorded in the warehouse (views stay current as staging changes).
"""

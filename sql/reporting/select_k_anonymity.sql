select
    k,
    persons,
    exact_persons,
    generalised_persons,
    suppressed_persons,
    classes,
    smallest_class
from reporting.rpt_k_anonymity

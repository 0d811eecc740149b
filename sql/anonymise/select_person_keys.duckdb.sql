-- HMAC-SHA256 (RFC 2104) of every identity at once: sha256(K^opad || sha256(K^ipad || identity)).
-- The padded keys are bound as blobs; the identities are the Arrow table registered as identities.
select sha256(:outer_pad || unhex(sha256(:inner_pad || encode(identities.identity)))) as person_key
from identities
order by identities.ordinal

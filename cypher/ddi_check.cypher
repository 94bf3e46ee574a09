// Drug-drug interactions among a set of drug classes (ATC level 3), each pair once.
//   Drug -INTERACTS- Drug
// @param drugs LIST<STRING>  Drug.id values, e.g. ["B01A", "N02B"]
// Returns one row per interacting pair: `path` (the relationship with its source and licence),
// drug_a < drug_b, source, licence.
UNWIND $drugs AS d
MATCH p = (a:Drug {id: d})-[r:INTERACTS]-(b:Drug)
WHERE b.id IN $drugs AND a.id < b.id
RETURN p AS path, a.id AS drug_a, b.id AS drug_b, r.source AS source, r.licence AS licence
ORDER BY drug_a, drug_b, source

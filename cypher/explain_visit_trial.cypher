// Batched rationale (clinical trials) for one visit and a list of drug classes:
//   Visit -HAS_DIAGNOSIS-> DiagnosisCode -MAPS_TO-> Disease <-TARGETS- Trial -STUDIES-> Ingredient -IN_CLASS-> Drug
// kgrec/explain/paths.py groups the rows that differ only in the trial (support = number of trials).
// @param visit_id STRING  Visit.id
// @param drugs LIST<STRING>  Drug.id values (ATC level 3)
// Returns one row per path: `path` (each relationship with source and licence), `drug`, `kind`.
MATCH p = (v:Visit {id: $visit_id})-[:HAS_DIAGNOSIS]->(c:DiagnosisCode)-[:MAPS_TO]->(d:Disease)<-[:TARGETS]-(t:Trial)-[:STUDIES]->(g:Ingredient)-[:IN_CLASS]->(drug:Drug)
WHERE drug.id IN $drugs
RETURN p AS path, drug.id AS drug, 'trial' AS kind
LIMIT 2000

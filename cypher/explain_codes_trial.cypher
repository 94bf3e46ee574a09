// Batched rationale (clinical trials) for a list of diagnosis codes (a new patient: no Visit node) and a list of drug classes:
//   DiagnosisCode -MAPS_TO-> Disease <-TARGETS- Trial -STUDIES-> Ingredient -IN_CLASS-> Drug
// kgrec/explain/paths.py groups the rows that differ only in the trial (support = number of trials).
// @param codes LIST<STRING>  DiagnosisCode.id values, e.g. ["ICD9CM:4019", "ICD10CM:I10"]
// @param drugs LIST<STRING>  Drug.id values (ATC level 3)
// Returns one row per path: `path` (each relationship with source and licence), `drug`, `kind`.
MATCH p = (c:DiagnosisCode)-[:MAPS_TO]->(d:Disease)<-[:TARGETS]-(t:Trial)-[:STUDIES]->(g:Ingredient)-[:IN_CLASS]->(drug:Drug)
WHERE c.id IN $codes AND drug.id IN $drugs
RETURN p AS path, drug.id AS drug, 'trial' AS kind
LIMIT 2000

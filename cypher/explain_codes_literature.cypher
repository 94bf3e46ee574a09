// Batched rationale (literature, BC5CDR abstracts) for a list of diagnosis codes (a new patient: no Visit node) and a list of drug classes:
//   co-mention: DiagnosisCode -MAPS_TO-> Disease <-MENTIONS_DISEASE- Publication
//               -MENTIONS_CHEMICAL-> Chemical -SAME_AS-> Ingredient -IN_CLASS-> Drug
//   adverse:    DiagnosisCode -MAPS_TO-> Disease <-INDUCES- Chemical -SAME_AS-> Ingredient
//               -IN_CLASS-> Drug   (the drug is reported to cause a disease of the visit: a caution, not support)
// @param codes LIST<STRING>  DiagnosisCode.id values, e.g. ["ICD9CM:4019", "ICD10CM:I10"]
// @param drugs LIST<STRING>  Drug.id values (ATC level 3)
// Returns one row per path: `path` (each relationship with source and licence), `drug`, `kind`.
MATCH p = (c:DiagnosisCode)-[:MAPS_TO]->(d:Disease)<-[:MENTIONS_DISEASE]-(pub:Publication)-[:MENTIONS_CHEMICAL]->(ch:Chemical)-[:SAME_AS]->(g:Ingredient)-[:IN_CLASS]->(drug:Drug)
WHERE c.id IN $codes AND drug.id IN $drugs
RETURN p AS path, drug.id AS drug, 'literature' AS kind
LIMIT 2000;
MATCH p = (c:DiagnosisCode)-[:MAPS_TO]->(d:Disease)<-[:INDUCES]-(ch:Chemical)-[:SAME_AS]->(g:Ingredient)-[:IN_CLASS]->(drug:Drug)
WHERE c.id IN $codes AND drug.id IN $drugs
RETURN p AS path, drug.id AS drug, 'adverse' AS kind
LIMIT 2000;

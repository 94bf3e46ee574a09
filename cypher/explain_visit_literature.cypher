// Batched rationale (literature, BC5CDR abstracts) for one visit and a list of drug classes:
//   co-mention: Visit -HAS_DIAGNOSIS-> DiagnosisCode -MAPS_TO-> Disease <-MENTIONS_DISEASE- Publication
//               -MENTIONS_CHEMICAL-> Chemical -SAME_AS-> Ingredient -IN_CLASS-> Drug
//   adverse:    Visit -HAS_DIAGNOSIS-> DiagnosisCode -MAPS_TO-> Disease <-INDUCES- Chemical -SAME_AS-> Ingredient
//               -IN_CLASS-> Drug   (the drug is reported to cause a disease of the visit: a caution, not support)
// @param visit_id STRING  Visit.id
// @param drugs LIST<STRING>  Drug.id values (ATC level 3)
// Returns one row per path: `path` (each relationship with source and licence), `drug`, `kind`.
MATCH p = (v:Visit {id: $visit_id})-[:HAS_DIAGNOSIS]->(c:DiagnosisCode)-[:MAPS_TO]->(d:Disease)<-[:MENTIONS_DISEASE]-(pub:Publication)-[:MENTIONS_CHEMICAL]->(ch:Chemical)-[:SAME_AS]->(g:Ingredient)-[:IN_CLASS]->(drug:Drug)
WHERE drug.id IN $drugs
RETURN p AS path, drug.id AS drug, 'literature' AS kind
LIMIT 2000;
MATCH p = (v:Visit {id: $visit_id})-[:HAS_DIAGNOSIS]->(c:DiagnosisCode)-[:MAPS_TO]->(d:Disease)<-[:INDUCES]-(ch:Chemical)-[:SAME_AS]->(g:Ingredient)-[:IN_CLASS]->(drug:Drug)
WHERE drug.id IN $drugs
RETURN p AS path, drug.id AS drug, 'adverse' AS kind
LIMIT 2000;

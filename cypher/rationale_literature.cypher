// Rationale from the literature (BC5CDR abstracts):
//   co-mention: Visit -HAS_DIAGNOSIS-> DiagnosisCode -MAPS_TO-> Disease <-MENTIONS_DISEASE- Publication
//               -MENTIONS_CHEMICAL-> Chemical -SAME_AS-> Ingredient -IN_CLASS-> Drug
//   induces:    Visit -HAS_DIAGNOSIS-> DiagnosisCode -MAPS_TO-> Disease <-INDUCES- Chemical
//               -SAME_AS-> Ingredient -IN_CLASS-> Drug   (the drug is reported to cause a disease of
//               the visit: evidence against, or an adverse-effect link, not an indication)
// @param visit_id STRING  Visit.id
// @param drug STRING  Drug.id (ATC level 3)
// Returns one row per path: `path` (each relationship with source and licence), relation, pmid.
MATCH p = (v:Visit {id: $visit_id})-[:HAS_DIAGNOSIS]->(:DiagnosisCode)-[:MAPS_TO]->(d:Disease)<-[:MENTIONS_DISEASE]-(pub:Publication)-[:MENTIONS_CHEMICAL]->(ch:Chemical)-[:SAME_AS]->(g:Ingredient)-[:IN_CLASS]->(drug:Drug {id: $drug})
WITH p, pub, d, g ORDER BY pub.id LIMIT 50
RETURN p AS path, 'co-mention' AS relation, pub.id AS pmid, d.id AS disease, g.id AS ingredient;
MATCH p = (v:Visit {id: $visit_id})-[:HAS_DIAGNOSIS]->(:DiagnosisCode)-[:MAPS_TO]->(d:Disease)<-[x:INDUCES]-(ch:Chemical)-[:SAME_AS]->(g:Ingredient)-[:IN_CLASS]->(drug:Drug {id: $drug})
RETURN p AS path, 'induces' AS relation, x.pmid AS pmid, d.id AS disease, g.id AS ingredient;

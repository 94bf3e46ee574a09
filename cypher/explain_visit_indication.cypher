// Batched rationale (indications) for one visit and a list of drug classes: what `kgrec recommend`
// and `kgrec explain` run (one statement per path shape, all drugs at once; see kgrec/explain/paths.py).
//   indication:        Visit -HAS_DIAGNOSIS-> DiagnosisCode -MAPS_TO-> Disease <-INDICATION- Ingredient -IN_CLASS-> Drug
//   related code:      Visit -HAS_DIAGNOSIS-> DiagnosisCode -CODE_PARENT|GEM-> DiagnosisCode -MAPS_TO-> Disease <-INDICATION- ...
//   ICD-10 via GEM:    Visit -HAS_DIAGNOSIS-> DiagnosisCode <-GEM- DiagnosisCode (ICD-9) -MAPS_TO-> Disease <-INDICATION- ...
//   code indication:   Visit -HAS_DIAGNOSIS-> DiagnosisCode <-INDICATION_ICD- Ingredient -IN_CLASS-> Drug   (MEDI)
//   code indication via the category: Visit -HAS_DIAGNOSIS-> DiagnosisCode -CODE_PARENT-> DiagnosisCode <-INDICATION_ICD- ...
// INDICATION edges of kind 'non_indication' are left out. Every statement starts at the bound visit and
// follows fixed directions (fast on Ladybug).
// @param visit_id STRING  Visit.id, e.g. mimic3:142345
// @param drugs LIST<STRING>  Drug.id values (ATC level 3)
// Returns one row per path: `path` (each relationship with source and licence), `drug`, `kind`.
MATCH p = (v:Visit {id: $visit_id})-[:HAS_DIAGNOSIS]->(c:DiagnosisCode)-[:MAPS_TO]->(d:Disease)<-[i:INDICATION]-(g:Ingredient)-[:IN_CLASS]->(drug:Drug)
WHERE drug.id IN $drugs AND coalesce(i.kind, '') <> 'non_indication'
RETURN p AS path, drug.id AS drug, 'indication' AS kind;
MATCH p = (v:Visit {id: $visit_id})-[:HAS_DIAGNOSIS]->(c0:DiagnosisCode)-[:CODE_PARENT|GEM]->(c:DiagnosisCode)-[:MAPS_TO]->(d:Disease)<-[i:INDICATION]-(g:Ingredient)-[:IN_CLASS]->(drug:Drug)
WHERE drug.id IN $drugs AND coalesce(i.kind, '') <> 'non_indication'
RETURN p AS path, drug.id AS drug, 'indication' AS kind;
MATCH p = (v:Visit {id: $visit_id})-[:HAS_DIAGNOSIS]->(c0:DiagnosisCode)<-[:GEM]-(c:DiagnosisCode)-[:MAPS_TO]->(d:Disease)<-[i:INDICATION]-(g:Ingredient)-[:IN_CLASS]->(drug:Drug)
WHERE drug.id IN $drugs AND coalesce(i.kind, '') <> 'non_indication'
RETURN p AS path, drug.id AS drug, 'indication' AS kind;
MATCH p = (v:Visit {id: $visit_id})-[:HAS_DIAGNOSIS]->(c:DiagnosisCode)<-[i:INDICATION_ICD]-(g:Ingredient)-[:IN_CLASS]->(drug:Drug)
WHERE drug.id IN $drugs
RETURN p AS path, drug.id AS drug, 'code_indication' AS kind;
MATCH p = (v:Visit {id: $visit_id})-[:HAS_DIAGNOSIS]->(c0:DiagnosisCode)-[:CODE_PARENT]->(c:DiagnosisCode)<-[i:INDICATION_ICD]-(g:Ingredient)-[:IN_CLASS]->(drug:Drug)
WHERE drug.id IN $drugs
RETURN p AS path, drug.id AS drug, 'code_indication' AS kind;

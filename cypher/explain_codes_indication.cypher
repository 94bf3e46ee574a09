// Batched rationale (indications) for a list of diagnosis codes (a new patient: no Visit node) and a list of drug classes: what `kgrec recommend`
// and `kgrec explain` run (one statement per path shape, all drugs at once; see kgrec/explain/paths.py).
//   indication:        DiagnosisCode -MAPS_TO-> Disease <-INDICATION- Ingredient -IN_CLASS-> Drug
//   related code:      DiagnosisCode -CODE_PARENT|GEM-> DiagnosisCode -MAPS_TO-> Disease <-INDICATION- ...
//   ICD-10 via GEM:    DiagnosisCode <-GEM- DiagnosisCode (ICD-9) -MAPS_TO-> Disease <-INDICATION- ...
//   code indication:   DiagnosisCode <-INDICATION_ICD- Ingredient -IN_CLASS-> Drug   (MEDI)
//   code indication via the category: DiagnosisCode -CODE_PARENT-> DiagnosisCode <-INDICATION_ICD- ...
// INDICATION edges of kind 'non_indication' are left out. Every statement starts at the given codes and
// follows fixed directions.
// @param codes LIST<STRING>  DiagnosisCode.id values, e.g. ["ICD9CM:4019", "ICD10CM:I10"]
// @param drugs LIST<STRING>  Drug.id values (ATC level 3)
// Returns one row per path: `path` (each relationship with source and licence), `drug`, `kind`.
MATCH p = (c:DiagnosisCode)-[:MAPS_TO]->(d:Disease)<-[i:INDICATION]-(g:Ingredient)-[:IN_CLASS]->(drug:Drug)
WHERE c.id IN $codes AND drug.id IN $drugs AND coalesce(i.kind, '') <> 'non_indication'
RETURN p AS path, drug.id AS drug, 'indication' AS kind;
MATCH p = (c0:DiagnosisCode)-[:CODE_PARENT|GEM]->(c:DiagnosisCode)-[:MAPS_TO]->(d:Disease)<-[i:INDICATION]-(g:Ingredient)-[:IN_CLASS]->(drug:Drug)
WHERE c0.id IN $codes AND drug.id IN $drugs AND coalesce(i.kind, '') <> 'non_indication'
RETURN p AS path, drug.id AS drug, 'indication' AS kind;
MATCH p = (c0:DiagnosisCode)<-[:GEM]-(c:DiagnosisCode)-[:MAPS_TO]->(d:Disease)<-[i:INDICATION]-(g:Ingredient)-[:IN_CLASS]->(drug:Drug)
WHERE c0.id IN $codes AND drug.id IN $drugs AND coalesce(i.kind, '') <> 'non_indication'
RETURN p AS path, drug.id AS drug, 'indication' AS kind;
MATCH p = (c:DiagnosisCode)<-[i:INDICATION_ICD]-(g:Ingredient)-[:IN_CLASS]->(drug:Drug)
WHERE c.id IN $codes AND drug.id IN $drugs
RETURN p AS path, drug.id AS drug, 'code_indication' AS kind;
MATCH p = (c0:DiagnosisCode)-[:CODE_PARENT]->(c:DiagnosisCode)<-[i:INDICATION_ICD]-(g:Ingredient)-[:IN_CLASS]->(drug:Drug)
WHERE c0.id IN $codes AND drug.id IN $drugs
RETURN p AS path, drug.id AS drug, 'code_indication' AS kind;

// Batched rationale (indications) for one visit and a list of drug classes: what `kgrec recommend` and `kgrec explain` run
// (kgrec/explain/paths.py), one statement per path shape, for all drugs at once.
//   indication:        Visit -HAS_DIAGNOSIS-> DiagnosisCode -MAPS_TO-> Disease <-INDICATION- Ingredient -IN_CLASS-> Drug
//   related code:      Visit -HAS_DIAGNOSIS-> DiagnosisCode -CODE_PARENT-> DiagnosisCode (its category) -MAPS_TO-> Disease <-INDICATION- ...
//                      Visit -HAS_DIAGNOSIS-> DiagnosisCode -GEM-> DiagnosisCode (its ICD-10 equivalent) -MAPS_TO-> Disease <-INDICATION- ...
//   ICD-10 via GEM:    Visit -HAS_DIAGNOSIS-> DiagnosisCode <-GEM- DiagnosisCode (ICD-9) -MAPS_TO-> Disease <-INDICATION- ...
//   code indication:   Visit -HAS_DIAGNOSIS-> DiagnosisCode <-INDICATION_ICD- Ingredient -IN_CLASS-> Drug   (MEDI)
//   via the category:  Visit -HAS_DIAGNOSIS-> DiagnosisCode -CODE_PARENT-> DiagnosisCode <-INDICATION_ICD- ...
// INDICATION edges of kind 'non_indication' are left out. Every statement starts at the bound visit and follows fixed directions (fast on Ladybug).
// @param visit_id STRING  Visit.id, e.g. mimic3:142345
// @param drugs LIST<STRING>  Drug.id values (ATC level 3)
// Returns one row per path. Columns: `kind`, `drug`, `shape` (the labels and relationship types in
// path order), `n<i>`/`m<i>` (id/name of node i), `s<j>`/`l<j>` (source/licence of relationship j),
// `r<j>_<property>` (other properties of relationship j). Scalar columns cost half what whole paths
// (`RETURN p`) do on Ladybug; kgrec/explain/paths.py accepts either.
MATCH (v:Visit {id: $visit_id})-[r0:HAS_DIAGNOSIS]->(c:DiagnosisCode)-[r1:MAPS_TO]->(d:Disease)<-[r2:INDICATION]-(g:Ingredient)-[r3:IN_CLASS]->(drug:Drug)
WHERE drug.id IN $drugs AND coalesce(r2.kind, '') <> 'non_indication'
RETURN 'indication' AS kind, drug.id AS drug,
       'Visit -HAS_DIAGNOSIS-> DiagnosisCode -MAPS_TO-> Disease <-INDICATION- Ingredient -IN_CLASS-> Drug' AS shape,
       v.id AS n0, c.id AS n1, c.name AS m1, d.id AS n2, d.name AS m2, g.id AS n3, g.name AS m3,
       drug.id AS n4, drug.name AS m4, r0.source AS s0, r0.licence AS l0, r1.source AS s1, r1.licence AS l1,
       r2.source AS s2, r2.licence AS l2, r2.kind AS r2_kind, r3.source AS s3, r3.licence AS l3,
       r3.atc_code AS r3_atc_code;
MATCH (v:Visit {id: $visit_id})-[r0:HAS_DIAGNOSIS]->(c0:DiagnosisCode)-[r1:CODE_PARENT]->(c:DiagnosisCode)-[r2:MAPS_TO]->(d:Disease)<-[r3:INDICATION]-(g:Ingredient)-[r4:IN_CLASS]->(drug:Drug)
WHERE drug.id IN $drugs AND coalesce(r3.kind, '') <> 'non_indication'
RETURN 'indication' AS kind, drug.id AS drug,
       'Visit -HAS_DIAGNOSIS-> DiagnosisCode -CODE_PARENT-> DiagnosisCode -MAPS_TO-> Disease <-INDICATION- Ingredient -IN_CLASS-> Drug' AS shape,
       v.id AS n0, c0.id AS n1, c0.name AS m1, c.id AS n2, c.name AS m2, d.id AS n3, d.name AS m3,
       g.id AS n4, g.name AS m4, drug.id AS n5, drug.name AS m5, r0.source AS s0, r0.licence AS l0,
       r1.source AS s1, r1.licence AS l1, r2.source AS s2, r2.licence AS l2, r3.source AS s3,
       r3.licence AS l3, r3.kind AS r3_kind, r4.source AS s4, r4.licence AS l4, r4.atc_code AS r4_atc_code;
MATCH (v:Visit {id: $visit_id})-[r0:HAS_DIAGNOSIS]->(c0:DiagnosisCode)-[r1:GEM]->(c:DiagnosisCode)-[r2:MAPS_TO]->(d:Disease)<-[r3:INDICATION]-(g:Ingredient)-[r4:IN_CLASS]->(drug:Drug)
WHERE drug.id IN $drugs AND coalesce(r3.kind, '') <> 'non_indication'
RETURN 'indication' AS kind, drug.id AS drug,
       'Visit -HAS_DIAGNOSIS-> DiagnosisCode -GEM-> DiagnosisCode -MAPS_TO-> Disease <-INDICATION- Ingredient -IN_CLASS-> Drug' AS shape,
       v.id AS n0, c0.id AS n1, c0.name AS m1, c.id AS n2, c.name AS m2, d.id AS n3, d.name AS m3,
       g.id AS n4, g.name AS m4, drug.id AS n5, drug.name AS m5, r0.source AS s0, r0.licence AS l0,
       r1.source AS s1, r1.licence AS l1, r1.approximate AS r1_approximate, r2.source AS s2,
       r2.licence AS l2, r3.source AS s3, r3.licence AS l3, r3.kind AS r3_kind, r4.source AS s4,
       r4.licence AS l4, r4.atc_code AS r4_atc_code;
MATCH (v:Visit {id: $visit_id})-[r0:HAS_DIAGNOSIS]->(c0:DiagnosisCode)<-[r1:GEM]-(c:DiagnosisCode)-[r2:MAPS_TO]->(d:Disease)<-[r3:INDICATION]-(g:Ingredient)-[r4:IN_CLASS]->(drug:Drug)
WHERE drug.id IN $drugs AND coalesce(r3.kind, '') <> 'non_indication'
RETURN 'indication' AS kind, drug.id AS drug,
       'Visit -HAS_DIAGNOSIS-> DiagnosisCode <-GEM- DiagnosisCode -MAPS_TO-> Disease <-INDICATION- Ingredient -IN_CLASS-> Drug' AS shape,
       v.id AS n0, c0.id AS n1, c0.name AS m1, c.id AS n2, c.name AS m2, d.id AS n3, d.name AS m3,
       g.id AS n4, g.name AS m4, drug.id AS n5, drug.name AS m5, r0.source AS s0, r0.licence AS l0,
       r1.source AS s1, r1.licence AS l1, r1.approximate AS r1_approximate, r2.source AS s2,
       r2.licence AS l2, r3.source AS s3, r3.licence AS l3, r3.kind AS r3_kind, r4.source AS s4,
       r4.licence AS l4, r4.atc_code AS r4_atc_code;
MATCH (v:Visit {id: $visit_id})-[r0:HAS_DIAGNOSIS]->(c:DiagnosisCode)<-[r1:INDICATION_ICD]-(g:Ingredient)-[r2:IN_CLASS]->(drug:Drug)
WHERE drug.id IN $drugs
RETURN 'code_indication' AS kind, drug.id AS drug,
       'Visit -HAS_DIAGNOSIS-> DiagnosisCode <-INDICATION_ICD- Ingredient -IN_CLASS-> Drug' AS shape,
       v.id AS n0, c.id AS n1, c.name AS m1, g.id AS n2, g.name AS m2, drug.id AS n3, drug.name AS m3,
       r0.source AS s0, r0.licence AS l0, r1.source AS s1, r1.licence AS l1,
       r1.high_precision AS r1_high_precision, r2.source AS s2, r2.licence AS l2,
       r2.atc_code AS r2_atc_code;
MATCH (v:Visit {id: $visit_id})-[r0:HAS_DIAGNOSIS]->(c0:DiagnosisCode)-[r1:CODE_PARENT]->(c:DiagnosisCode)<-[r2:INDICATION_ICD]-(g:Ingredient)-[r3:IN_CLASS]->(drug:Drug)
WHERE drug.id IN $drugs
RETURN 'code_indication' AS kind, drug.id AS drug,
       'Visit -HAS_DIAGNOSIS-> DiagnosisCode -CODE_PARENT-> DiagnosisCode <-INDICATION_ICD- Ingredient -IN_CLASS-> Drug' AS shape,
       v.id AS n0, c0.id AS n1, c0.name AS m1, c.id AS n2, c.name AS m2, g.id AS n3, g.name AS m3,
       drug.id AS n4, drug.name AS m4, r0.source AS s0, r0.licence AS l0, r1.source AS s1, r1.licence AS l1,
       r2.source AS s2, r2.licence AS l2, r2.high_precision AS r2_high_precision, r3.source AS s3,
       r3.licence AS l3, r3.atc_code AS r3_atc_code;

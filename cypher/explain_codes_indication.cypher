// Batched rationale (indications) for a list of diagnosis codes (a new patient: no Visit node) and a list of drug classes: what `kgrec recommend` and `kgrec explain` run
// (kgrec/explain/paths.py), one statement per path shape, for all drugs at once.
//   indication:        DiagnosisCode -MAPS_TO-> Disease <-INDICATION- Ingredient -IN_CLASS-> Drug
//   related code:      DiagnosisCode -CODE_PARENT-> DiagnosisCode (its category) -MAPS_TO-> Disease <-INDICATION- ...
//                      DiagnosisCode -GEM-> DiagnosisCode (its ICD-10 equivalent) -MAPS_TO-> Disease <-INDICATION- ...
//   ICD-10 via GEM:    DiagnosisCode <-GEM- DiagnosisCode (ICD-9) -MAPS_TO-> Disease <-INDICATION- ...
//   code indication:   DiagnosisCode <-INDICATION_ICD- Ingredient -IN_CLASS-> Drug   (MEDI)
//   via the category:  DiagnosisCode -CODE_PARENT-> DiagnosisCode <-INDICATION_ICD- ...
// INDICATION edges of kind 'non_indication' are left out. Every statement starts at the given codes and follows fixed directions.
// @param codes LIST<STRING>  DiagnosisCode.id values, e.g. ["ICD9CM:4019", "ICD10CM:I10"]
// @param drugs LIST<STRING>  Drug.id values (ATC level 3)
// Returns one row per path. Columns: `kind`, `drug`, `shape` (the labels and relationship types in
// path order), `n<i>`/`m<i>` (id/name of node i), `s<j>`/`l<j>` (source/licence of relationship j),
// `r<j>_<property>` (other properties of relationship j). Scalar columns cost half what whole paths
// (`RETURN p`) do on Ladybug; kgrec/explain/paths.py accepts either.
MATCH (c:DiagnosisCode)-[r0:MAPS_TO]->(d:Disease)<-[r1:INDICATION]-(g:Ingredient)-[r2:IN_CLASS]->(drug:Drug)
WHERE c.id IN $codes AND drug.id IN $drugs AND coalesce(r1.kind, '') <> 'non_indication'
RETURN 'indication' AS kind, drug.id AS drug,
       'DiagnosisCode -MAPS_TO-> Disease <-INDICATION- Ingredient -IN_CLASS-> Drug' AS shape, c.id AS n0,
       c.name AS m0, d.id AS n1, d.name AS m1, g.id AS n2, g.name AS m2, drug.id AS n3, drug.name AS m3,
       r0.source AS s0, r0.licence AS l0, r1.source AS s1, r1.licence AS l1, r1.kind AS r1_kind,
       r2.source AS s2, r2.licence AS l2, r2.atc_code AS r2_atc_code;
MATCH (c0:DiagnosisCode)-[r0:CODE_PARENT]->(c:DiagnosisCode)-[r1:MAPS_TO]->(d:Disease)<-[r2:INDICATION]-(g:Ingredient)-[r3:IN_CLASS]->(drug:Drug)
WHERE c0.id IN $codes AND drug.id IN $drugs AND coalesce(r2.kind, '') <> 'non_indication'
RETURN 'indication' AS kind, drug.id AS drug,
       'DiagnosisCode -CODE_PARENT-> DiagnosisCode -MAPS_TO-> Disease <-INDICATION- Ingredient -IN_CLASS-> Drug' AS shape,
       c0.id AS n0, c0.name AS m0, c.id AS n1, c.name AS m1, d.id AS n2, d.name AS m2, g.id AS n3,
       g.name AS m3, drug.id AS n4, drug.name AS m4, r0.source AS s0, r0.licence AS l0, r1.source AS s1,
       r1.licence AS l1, r2.source AS s2, r2.licence AS l2, r2.kind AS r2_kind, r3.source AS s3,
       r3.licence AS l3, r3.atc_code AS r3_atc_code;
MATCH (c0:DiagnosisCode)-[r0:GEM]->(c:DiagnosisCode)-[r1:MAPS_TO]->(d:Disease)<-[r2:INDICATION]-(g:Ingredient)-[r3:IN_CLASS]->(drug:Drug)
WHERE c0.id IN $codes AND drug.id IN $drugs AND coalesce(r2.kind, '') <> 'non_indication'
RETURN 'indication' AS kind, drug.id AS drug,
       'DiagnosisCode -GEM-> DiagnosisCode -MAPS_TO-> Disease <-INDICATION- Ingredient -IN_CLASS-> Drug' AS shape,
       c0.id AS n0, c0.name AS m0, c.id AS n1, c.name AS m1, d.id AS n2, d.name AS m2, g.id AS n3,
       g.name AS m3, drug.id AS n4, drug.name AS m4, r0.source AS s0, r0.licence AS l0,
       r0.approximate AS r0_approximate, r1.source AS s1, r1.licence AS l1, r2.source AS s2,
       r2.licence AS l2, r2.kind AS r2_kind, r3.source AS s3, r3.licence AS l3, r3.atc_code AS r3_atc_code;
MATCH (c0:DiagnosisCode)<-[r0:GEM]-(c:DiagnosisCode)-[r1:MAPS_TO]->(d:Disease)<-[r2:INDICATION]-(g:Ingredient)-[r3:IN_CLASS]->(drug:Drug)
WHERE c0.id IN $codes AND drug.id IN $drugs AND coalesce(r2.kind, '') <> 'non_indication'
RETURN 'indication' AS kind, drug.id AS drug,
       'DiagnosisCode <-GEM- DiagnosisCode -MAPS_TO-> Disease <-INDICATION- Ingredient -IN_CLASS-> Drug' AS shape,
       c0.id AS n0, c0.name AS m0, c.id AS n1, c.name AS m1, d.id AS n2, d.name AS m2, g.id AS n3,
       g.name AS m3, drug.id AS n4, drug.name AS m4, r0.source AS s0, r0.licence AS l0,
       r0.approximate AS r0_approximate, r1.source AS s1, r1.licence AS l1, r2.source AS s2,
       r2.licence AS l2, r2.kind AS r2_kind, r3.source AS s3, r3.licence AS l3, r3.atc_code AS r3_atc_code;
MATCH (c:DiagnosisCode)<-[r0:INDICATION_ICD]-(g:Ingredient)-[r1:IN_CLASS]->(drug:Drug)
WHERE c.id IN $codes AND drug.id IN $drugs
RETURN 'code_indication' AS kind, drug.id AS drug,
       'DiagnosisCode <-INDICATION_ICD- Ingredient -IN_CLASS-> Drug' AS shape, c.id AS n0, c.name AS m0,
       g.id AS n1, g.name AS m1, drug.id AS n2, drug.name AS m2, r0.source AS s0, r0.licence AS l0,
       r0.high_precision AS r0_high_precision, r1.source AS s1, r1.licence AS l1,
       r1.atc_code AS r1_atc_code;
MATCH (c0:DiagnosisCode)-[r0:CODE_PARENT]->(c:DiagnosisCode)<-[r1:INDICATION_ICD]-(g:Ingredient)-[r2:IN_CLASS]->(drug:Drug)
WHERE c0.id IN $codes AND drug.id IN $drugs
RETURN 'code_indication' AS kind, drug.id AS drug,
       'DiagnosisCode -CODE_PARENT-> DiagnosisCode <-INDICATION_ICD- Ingredient -IN_CLASS-> Drug' AS shape,
       c0.id AS n0, c0.name AS m0, c.id AS n1, c.name AS m1, g.id AS n2, g.name AS m2, drug.id AS n3,
       drug.name AS m3, r0.source AS s0, r0.licence AS l0, r1.source AS s1, r1.licence AS l1,
       r1.high_precision AS r1_high_precision, r2.source AS s2, r2.licence AS l2,
       r2.atc_code AS r2_atc_code;

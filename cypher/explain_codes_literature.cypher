// Batched rationale (literature, BC5CDR abstracts) for a list of diagnosis codes (a new patient: no Visit node) and a list of drug classes:
//   co-mention: DiagnosisCode -MAPS_TO-> Disease <-MENTIONS_DISEASE- Publication
//               -MENTIONS_CHEMICAL-> Chemical -SAME_AS-> Ingredient -IN_CLASS-> Drug
//   adverse:    DiagnosisCode -MAPS_TO-> Disease <-INDUCES- Chemical -SAME_AS-> Ingredient
//               -IN_CLASS-> Drug   (the drug is reported to cause a disease of the visit: a caution, not support)
// Every statement starts at the given codes and follows fixed directions.
// @param codes LIST<STRING>  DiagnosisCode.id values, e.g. ["ICD9CM:4019", "ICD10CM:I10"]
// @param drugs LIST<STRING>  Drug.id values (ATC level 3)
// Returns one row per path. Columns: `kind`, `drug`, `shape` (the labels and relationship types in
// path order), `n<i>`/`m<i>` (id/name of node i), `s<j>`/`l<j>` (source/licence of relationship j),
// `r<j>_<property>` (other properties of relationship j). Scalar columns cost half what whole paths
// (`RETURN p`) do on Ladybug; kgrec/explain/paths.py accepts either.
MATCH (c:DiagnosisCode)-[r0:MAPS_TO]->(d:Disease)<-[r1:MENTIONS_DISEASE]-(pub:Publication)-[r2:MENTIONS_CHEMICAL]->(ch:Chemical)-[r3:SAME_AS]->(g:Ingredient)-[r4:IN_CLASS]->(drug:Drug)
WHERE c.id IN $codes AND drug.id IN $drugs
RETURN 'literature' AS kind, drug.id AS drug,
       'DiagnosisCode -MAPS_TO-> Disease <-MENTIONS_DISEASE- Publication -MENTIONS_CHEMICAL-> Chemical -SAME_AS-> Ingredient -IN_CLASS-> Drug' AS shape,
       c.id AS n0, c.name AS m0, d.id AS n1, d.name AS m1, pub.id AS n2, ch.id AS n3, ch.name AS m3,
       g.id AS n4, g.name AS m4, drug.id AS n5, drug.name AS m5, r0.source AS s0, r0.licence AS l0,
       r1.source AS s1, r1.licence AS l1, r1.count AS r1_count, r2.source AS s2, r2.licence AS l2,
       r2.count AS r2_count, r3.source AS s3, r3.licence AS l3, r4.source AS s4, r4.licence AS l4,
       r4.atc_code AS r4_atc_code
LIMIT 2000;
MATCH (c:DiagnosisCode)-[r0:MAPS_TO]->(d:Disease)<-[r1:INDUCES]-(ch:Chemical)-[r2:SAME_AS]->(g:Ingredient)-[r3:IN_CLASS]->(drug:Drug)
WHERE c.id IN $codes AND drug.id IN $drugs
RETURN 'adverse' AS kind, drug.id AS drug,
       'DiagnosisCode -MAPS_TO-> Disease <-INDUCES- Chemical -SAME_AS-> Ingredient -IN_CLASS-> Drug' AS shape,
       c.id AS n0, c.name AS m0, d.id AS n1, d.name AS m1, ch.id AS n2, ch.name AS m2, g.id AS n3,
       g.name AS m3, drug.id AS n4, drug.name AS m4, r0.source AS s0, r0.licence AS l0, r1.source AS s1,
       r1.licence AS l1, r1.pmid AS r1_pmid, r2.source AS s2, r2.licence AS l2, r3.source AS s3,
       r3.licence AS l3, r3.atc_code AS r3_atc_code
LIMIT 2000;

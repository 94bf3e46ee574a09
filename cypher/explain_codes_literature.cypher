// Batched literature evidence (BC5CDR abstracts) for a list of diagnosis codes (a new patient: no Visit
// node) and a list of drug classes. BC5CDR is a corpus of chemical-*induced* diseases: both shapes are
// cautions shown apart, never support for a drug.
//   co-mention: DiagnosisCode -MAPS_TO-> Disease <-MENTIONS_DISEASE- Publication
//               -MENTIONS_CHEMICAL-> Chemical -SAME_AS-> Ingredient -IN_CLASS-> Drug
//   adverse:    DiagnosisCode -MAPS_TO-> Disease <-INDUCES- Chemical -SAME_AS-> Ingredient
//               -IN_CLASS-> Drug   (the drug is reported to cause a disease of the visit)
// Aggregated in the store: one row per chain, `support` = distinct abstracts (co-mention) or PMIDs of
// the INDUCES annotations (adverse), `grouped` = up to 6 of them, `e<j>` = the distinct 'source|licence'
// pairs of a relationship that differs per abstract. Best supported first; the LIMIT is a safety net
// (kgrec/explain/paths.py says so in the result when a statement returns that many rows).
// Every statement starts at the given codes and follows fixed directions.
// @param codes LIST<STRING>  DiagnosisCode.id values, e.g. ["ICD9CM:4019", "ICD10CM:I10"]
// @param drugs LIST<STRING>  Drug.id values (ATC level 3)
// Columns: `kind`, `drug`, `shape` (the labels and relationship types in path order), `n<i>`/`m<i>`
// (id/name of node i), `s<j>`/`l<j>` (source/licence of relationship j) or `e<j>` (its 'source|licence'
// pairs), `r<j>_<property>` (other properties of relationship j), `support`, `grouped`.
MATCH (c:DiagnosisCode)-[r0:MAPS_TO]->(d:Disease)<-[r1:MENTIONS_DISEASE]-(pub:Publication)-[r2:MENTIONS_CHEMICAL]->(ch:Chemical)-[r3:SAME_AS]->(g:Ingredient)-[r4:IN_CLASS]->(drug:Drug)
WHERE c.id IN $codes AND drug.id IN $drugs
RETURN 'literature' AS kind, drug.id AS drug,
       'DiagnosisCode -MAPS_TO-> Disease <-MENTIONS_DISEASE- Publication -MENTIONS_CHEMICAL-> Chemical -SAME_AS-> Ingredient -IN_CLASS-> Drug' AS shape,
       c.id AS n0, c.name AS m0, d.id AS n1, d.name AS m1, min(pub.id) AS n2, ch.id AS n3, ch.name AS m3,
       g.id AS n4, g.name AS m4, drug.id AS n5, drug.name AS m5, r0.source AS s0, r0.licence AS l0,
       collect(DISTINCT r1.source + '|' + r1.licence) AS e1, collect(DISTINCT r2.source + '|' + r2.licence) AS e2,
       r3.source AS s3, r3.licence AS l3, r4.source AS s4, r4.licence AS l4, r4.atc_code AS r4_atc_code,
       count(DISTINCT pub.id) AS support, collect(DISTINCT pub.id)[0..6] AS grouped
ORDER BY drug, support DESC, n0, n1, n3, n4, s0, s3, s4
LIMIT 5000;
MATCH (c:DiagnosisCode)-[r0:MAPS_TO]->(d:Disease)<-[r1:INDUCES]-(ch:Chemical)-[r2:SAME_AS]->(g:Ingredient)-[r3:IN_CLASS]->(drug:Drug)
WHERE c.id IN $codes AND drug.id IN $drugs
RETURN 'adverse' AS kind, drug.id AS drug,
       'DiagnosisCode -MAPS_TO-> Disease <-INDUCES- Chemical -SAME_AS-> Ingredient -IN_CLASS-> Drug' AS shape,
       c.id AS n0, c.name AS m0, d.id AS n1, d.name AS m1, ch.id AS n2, ch.name AS m2, g.id AS n3,
       g.name AS m3, drug.id AS n4, drug.name AS m4, r0.source AS s0, r0.licence AS l0,
       collect(DISTINCT r1.source + '|' + r1.licence) AS e1, r2.source AS s2, r2.licence AS l2,
       r3.source AS s3, r3.licence AS l3, r3.atc_code AS r3_atc_code,
       count(DISTINCT r1.pmid) AS support, collect(DISTINCT r1.pmid)[0..6] AS grouped
ORDER BY drug, support DESC, n0, n1, n2, n3, s0, s2, s3
LIMIT 5000;

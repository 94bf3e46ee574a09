// Batched literature evidence (BC5CDR abstracts) for one visit and a list of drug classes. BC5CDR is a
// corpus of chemical-*induced* diseases: both shapes are cautions shown apart, never support for a drug.
//   co-mention: Visit -HAS_DIAGNOSIS-> DiagnosisCode -MAPS_TO-> Disease <-MENTIONS_DISEASE- Publication
//               -MENTIONS_CHEMICAL-> Chemical -SAME_AS-> Ingredient -IN_CLASS-> Drug
//   adverse:    Visit -HAS_DIAGNOSIS-> DiagnosisCode -MAPS_TO-> Disease <-INDUCES- Chemical -SAME_AS-> Ingredient
//               -IN_CLASS-> Drug   (the drug is reported to cause a disease of the visit)
// Aggregated in the store: one row per chain, `support` = distinct abstracts (co-mention) or PMIDs of
// the INDUCES annotations (adverse), `grouped` = up to 6 of them, `e<j>` = the distinct 'source|licence'
// pairs of a relationship that differs per abstract. Best supported first; the LIMIT is a safety net
// (kgrec/explain/paths.py says so in the result when a statement returns that many rows).
// Every statement starts at the bound visit and follows fixed directions (fast on Ladybug).
// @param visit_id STRING  Visit.id, e.g. mimic3:142345
// @param drugs LIST<STRING>  Drug.id values (ATC level 3)
// Columns: `kind`, `drug`, `shape` (the labels and relationship types in path order), `n<i>`/`m<i>`
// (id/name of node i), `s<j>`/`l<j>` (source/licence of relationship j) or `e<j>` (its 'source|licence'
// pairs), `r<j>_<property>` (other properties of relationship j), `support`, `grouped`.
MATCH (v:Visit {id: $visit_id})-[r0:HAS_DIAGNOSIS]->(c:DiagnosisCode)-[r1:MAPS_TO]->(d:Disease)<-[r2:MENTIONS_DISEASE]-(pub:Publication)-[r3:MENTIONS_CHEMICAL]->(ch:Chemical)-[r4:SAME_AS]->(g:Ingredient)-[r5:IN_CLASS]->(drug:Drug)
WHERE drug.id IN $drugs
RETURN 'literature' AS kind, drug.id AS drug,
       'Visit -HAS_DIAGNOSIS-> DiagnosisCode -MAPS_TO-> Disease <-MENTIONS_DISEASE- Publication -MENTIONS_CHEMICAL-> Chemical -SAME_AS-> Ingredient -IN_CLASS-> Drug' AS shape,
       v.id AS n0, c.id AS n1, c.name AS m1, d.id AS n2, d.name AS m2, min(pub.id) AS n3, ch.id AS n4,
       ch.name AS m4, g.id AS n5, g.name AS m5, drug.id AS n6, drug.name AS m6, r0.source AS s0,
       r0.licence AS l0, r1.source AS s1, r1.licence AS l1,
       collect(DISTINCT r2.source + '|' + r2.licence) AS e2, collect(DISTINCT r3.source + '|' + r3.licence) AS e3,
       r4.source AS s4, r4.licence AS l4, r5.source AS s5, r5.licence AS l5, r5.atc_code AS r5_atc_code,
       count(DISTINCT pub.id) AS support, collect(DISTINCT pub.id)[0..6] AS grouped
ORDER BY drug, support DESC, n1, n2, n4, n5, s0, s1, s4, s5
LIMIT 5000;
MATCH (v:Visit {id: $visit_id})-[r0:HAS_DIAGNOSIS]->(c:DiagnosisCode)-[r1:MAPS_TO]->(d:Disease)<-[r2:INDUCES]-(ch:Chemical)-[r3:SAME_AS]->(g:Ingredient)-[r4:IN_CLASS]->(drug:Drug)
WHERE drug.id IN $drugs
RETURN 'adverse' AS kind, drug.id AS drug,
       'Visit -HAS_DIAGNOSIS-> DiagnosisCode -MAPS_TO-> Disease <-INDUCES- Chemical -SAME_AS-> Ingredient -IN_CLASS-> Drug' AS shape,
       v.id AS n0, c.id AS n1, c.name AS m1, d.id AS n2, d.name AS m2, ch.id AS n3, ch.name AS m3,
       g.id AS n4, g.name AS m4, drug.id AS n5, drug.name AS m5, r0.source AS s0, r0.licence AS l0,
       r1.source AS s1, r1.licence AS l1, collect(DISTINCT r2.source + '|' + r2.licence) AS e2,
       r3.source AS s3, r3.licence AS l3, r4.source AS s4, r4.licence AS l4, r4.atc_code AS r4_atc_code,
       count(DISTINCT r2.pmid) AS support, collect(DISTINCT r2.pmid)[0..6] AS grouped
ORDER BY drug, support DESC, n1, n2, n3, n4, s0, s1, s3, s4
LIMIT 5000;

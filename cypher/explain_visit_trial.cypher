// Batched rationale (clinical trials) for one visit and a list of drug classes:
//   Visit -HAS_DIAGNOSIS-> DiagnosisCode -MAPS_TO-> Disease <-TARGETS- Trial -STUDIES-> Ingredient -IN_CLASS-> Drug
// Aggregated in the store: one row per code -> disease -> ingredient -> drug chain, with `support` =
// the number of distinct trials behind it (counted here, not from a capped row sample), `n3` = the
// smallest trial id (the one shown), `grouped` = up to 6 trial ids (examples), and for the two
// relationships that differ per trial their distinct 'source|licence' pairs (`e2`, `e3`).
// Rows come best supported first; the LIMIT is a safety net far above the aggregated row count of a
// visit, and kgrec/explain/paths.py says so in the result when a statement returns that many rows.
// Every statement starts at the bound visit and follows fixed directions (fast on Ladybug).
// @param visit_id STRING  Visit.id, e.g. mimic3:142345
// @param drugs LIST<STRING>  Drug.id values (ATC level 3)
// Columns: `kind`, `drug`, `shape` (the labels and relationship types in path order), `n<i>`/`m<i>`
// (id/name of node i), `s<j>`/`l<j>` (source/licence of relationship j) or `e<j>` (its 'source|licence'
// pairs), `r<j>_<property>` (other properties of relationship j), `support`, `grouped`.
MATCH (v:Visit {id: $visit_id})-[r0:HAS_DIAGNOSIS]->(c:DiagnosisCode)-[r1:MAPS_TO]->(d:Disease)<-[r2:TARGETS]-(t:Trial)-[r3:STUDIES]->(g:Ingredient)-[r4:IN_CLASS]->(drug:Drug)
WHERE drug.id IN $drugs
RETURN 'trial' AS kind, drug.id AS drug,
       'Visit -HAS_DIAGNOSIS-> DiagnosisCode -MAPS_TO-> Disease <-TARGETS- Trial -STUDIES-> Ingredient -IN_CLASS-> Drug' AS shape,
       v.id AS n0, c.id AS n1, c.name AS m1, d.id AS n2, d.name AS m2, min(t.id) AS n3, g.id AS n4, g.name AS m4,
       drug.id AS n5, drug.name AS m5, r0.source AS s0, r0.licence AS l0, r1.source AS s1, r1.licence AS l1,
       collect(DISTINCT r2.source + '|' + r2.licence) AS e2, collect(DISTINCT r3.source + '|' + r3.licence) AS e3,
       r4.source AS s4, r4.licence AS l4, r4.atc_code AS r4_atc_code,
       count(DISTINCT t.id) AS support, collect(DISTINCT t.id)[0..6] AS grouped
ORDER BY drug, support DESC, n1, n2, n4, s0, s1, s4
LIMIT 5000

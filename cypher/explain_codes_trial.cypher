// Batched rationale (clinical trials) for a list of diagnosis codes (a new patient: no Visit node) and a list of drug classes:
//   DiagnosisCode -MAPS_TO-> Disease <-TARGETS- Trial -STUDIES-> Ingredient -IN_CLASS-> Drug
// Aggregated in the store: one row per code -> disease -> ingredient -> drug chain, with `support` =
// the number of distinct trials behind it (counted here, not from a capped row sample), `n2` = the
// smallest trial id (the one shown), `grouped` = up to 6 trial ids (examples), and for the two
// relationships that differ per trial their distinct 'source|licence' pairs (`e1`, `e2`).
// Rows come best supported first; the LIMIT is a safety net far above the aggregated row count of a
// visit, and kgrec/explain/paths.py says so in the result when a statement returns that many rows.
// Every statement starts at the given codes and follows fixed directions.
// @param codes LIST<STRING>  DiagnosisCode.id values, e.g. ["ICD9CM:4019", "ICD10CM:I10"]
// @param drugs LIST<STRING>  Drug.id values (ATC level 3)
// Columns: `kind`, `drug`, `shape` (the labels and relationship types in path order), `n<i>`/`m<i>`
// (id/name of node i), `s<j>`/`l<j>` (source/licence of relationship j) or `e<j>` (its 'source|licence'
// pairs), `r<j>_<property>` (other properties of relationship j), `support`, `grouped`.
MATCH (c:DiagnosisCode)-[r0:MAPS_TO]->(d:Disease)<-[r1:TARGETS]-(t:Trial)-[r2:STUDIES]->(g:Ingredient)-[r3:IN_CLASS]->(drug:Drug)
WHERE c.id IN $codes AND drug.id IN $drugs
RETURN 'trial' AS kind, drug.id AS drug,
       'DiagnosisCode -MAPS_TO-> Disease <-TARGETS- Trial -STUDIES-> Ingredient -IN_CLASS-> Drug' AS shape,
       c.id AS n0, c.name AS m0, d.id AS n1, d.name AS m1, min(t.id) AS n2, g.id AS n3, g.name AS m3,
       drug.id AS n4, drug.name AS m4, r0.source AS s0, r0.licence AS l0,
       collect(DISTINCT r1.source + '|' + r1.licence) AS e1, collect(DISTINCT r2.source + '|' + r2.licence) AS e2,
       r3.source AS s3, r3.licence AS l3, r3.atc_code AS r3_atc_code,
       count(DISTINCT t.id) AS support, collect(DISTINCT t.id)[0..6] AS grouped
ORDER BY drug, support DESC, n0, n1, n3, s0, s3
LIMIT 5000

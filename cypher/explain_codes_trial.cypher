// Batched rationale (clinical trials) for a list of diagnosis codes (a new patient: no Visit node) and a list of drug classes:
//   DiagnosisCode -MAPS_TO-> Disease <-TARGETS- Trial -STUDIES-> Ingredient -IN_CLASS-> Drug
// kgrec/explain/paths.py groups the rows that differ only in the trial (support = number of trials).
// Every statement starts at the given codes and follows fixed directions.
// @param codes LIST<STRING>  DiagnosisCode.id values, e.g. ["ICD9CM:4019", "ICD10CM:I10"]
// @param drugs LIST<STRING>  Drug.id values (ATC level 3)
// Returns one row per path. Columns: `kind`, `drug`, `shape` (the labels and relationship types in
// path order), `n<i>`/`m<i>` (id/name of node i), `s<j>`/`l<j>` (source/licence of relationship j),
// `r<j>_<property>` (other properties of relationship j). Scalar columns cost half what whole paths
// (`RETURN p`) do on Ladybug; kgrec/explain/paths.py accepts either.
MATCH (c:DiagnosisCode)-[r0:MAPS_TO]->(d:Disease)<-[r1:TARGETS]-(t:Trial)-[r2:STUDIES]->(g:Ingredient)-[r3:IN_CLASS]->(drug:Drug)
WHERE c.id IN $codes AND drug.id IN $drugs
RETURN 'trial' AS kind, drug.id AS drug,
       'DiagnosisCode -MAPS_TO-> Disease <-TARGETS- Trial -STUDIES-> Ingredient -IN_CLASS-> Drug' AS shape,
       c.id AS n0, c.name AS m0, d.id AS n1, d.name AS m1, t.id AS n2, g.id AS n3, g.name AS m3,
       drug.id AS n4, drug.name AS m4, r0.source AS s0, r0.licence AS l0, r1.source AS s1, r1.licence AS l1,
       r2.source AS s2, r2.licence AS l2, r3.source AS s3, r3.licence AS l3, r3.atc_code AS r3_atc_code
LIMIT 2000

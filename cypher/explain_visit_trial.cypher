// Batched rationale (clinical trials) for one visit and a list of drug classes:
//   Visit -HAS_DIAGNOSIS-> DiagnosisCode -MAPS_TO-> Disease <-TARGETS- Trial -STUDIES-> Ingredient -IN_CLASS-> Drug
// kgrec/explain/paths.py groups the rows that differ only in the trial (support = number of trials).
// Every statement starts at the bound visit and follows fixed directions (fast on Ladybug).
// @param visit_id STRING  Visit.id, e.g. mimic3:142345
// @param drugs LIST<STRING>  Drug.id values (ATC level 3)
// Returns one row per path. Columns: `kind`, `drug`, `shape` (the labels and relationship types in
// path order), `n<i>`/`m<i>` (id/name of node i), `s<j>`/`l<j>` (source/licence of relationship j),
// `r<j>_<property>` (other properties of relationship j). Scalar columns cost half what whole paths
// (`RETURN p`) do on Ladybug; kgrec/explain/paths.py accepts either.
MATCH (v:Visit {id: $visit_id})-[r0:HAS_DIAGNOSIS]->(c:DiagnosisCode)-[r1:MAPS_TO]->(d:Disease)<-[r2:TARGETS]-(t:Trial)-[r3:STUDIES]->(g:Ingredient)-[r4:IN_CLASS]->(drug:Drug)
WHERE drug.id IN $drugs
RETURN 'trial' AS kind, drug.id AS drug,
       'Visit -HAS_DIAGNOSIS-> DiagnosisCode -MAPS_TO-> Disease <-TARGETS- Trial -STUDIES-> Ingredient -IN_CLASS-> Drug' AS shape,
       v.id AS n0, c.id AS n1, c.name AS m1, d.id AS n2, d.name AS m2, t.id AS n3, g.id AS n4, g.name AS m4,
       drug.id AS n5, drug.name AS m5, r0.source AS s0, r0.licence AS l0, r1.source AS s1, r1.licence AS l1,
       r2.source AS s2, r2.licence AS l2, r3.source AS s3, r3.licence AS l3, r4.source AS s4,
       r4.licence AS l4, r4.atc_code AS r4_atc_code
LIMIT 2000

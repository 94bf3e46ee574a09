// Batched rationale (similar patients) for one visit and a list of drug classes: visits of *other*
// patients that share a diagnosis code with this visit and received the drug, counted per (drug, code).
//   Visit -HAS_DIAGNOSIS-> DiagnosisCode <-HAS_DIAGNOSIS- Visit -HAS_PRESCRIPTION-> Drug
// Aggregated in the query (a common code is shared by thousands of visits): one row per (drug, code)
// with the number of visits, the smallest other visit id as the example, and the
// sources and licences of the relationships involved; kgrec/explain/paths.py assembles the path.
// @param visit_id STRING  Visit.id
// @param drugs LIST<STRING>  Drug.id values (ATC level 3)
// @param own LIST<STRING>  Visit.id values of this patient (left out: they would leak its own history)
// Returns: drug, drug_name, visit, code, code_name, n_visits, example, and for the three relationships
// (visit->code, other visit->code, other visit->drug) their distinct 'source|licence' pairs (r0, r1, r2).
MATCH (v:Visit {id: $visit_id})-[r0:HAS_DIAGNOSIS]->(c:DiagnosisCode)<-[r1:HAS_DIAGNOSIS]-(o:Visit)-[r2:HAS_PRESCRIPTION]->(drug:Drug)
WHERE drug.id IN $drugs AND NOT o.id IN $own
RETURN drug.id AS drug, drug.name AS drug_name, v.id AS visit, c.id AS code, c.name AS code_name,
       count(DISTINCT o) AS n_visits, min(o.id) AS example,
       collect(DISTINCT r0.source + '|' + r0.licence) AS r0, collect(DISTINCT r1.source + '|' + r1.licence) AS r1,
       collect(DISTINCT r2.source + '|' + r2.licence) AS r2
